"""The builder image's confinement (`RunAs`) and the unsafe one: who the commands run as, what
they may use, and that `stop_all` leaves nothing of the build running; the pipeline's use of them.
"""

from __future__ import annotations

import os
import resource
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from builder import shell
from builder.confine import (
    ConfinementError,
    Launch,
    RunAs,
    Unconfined,
    _processes_of,
    apply_rlimits,
    rlimits,
)
from builder.spec import BuildLimits
from tests.support.builder import failure, run, static_spec
from tests.support.waiting import gone

NOBODY = 65534
LIMITS = BuildLimits(cpu_seconds=30, memory_mb=512, processes=64, max_file_mb=1)


LIMITS_SCRIPT = """
import os, resource
print(os.getuid(), os.getgid(), os.getgroups())
for name in ("cpu", "nproc", "fsize", "as"):
    print(name, resource.getrlimit(getattr(resource, "RLIMIT_" + name.upper()))[0])
"""


def run_launch(launch: Launch) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = shell.run(
        launch.argv,
        cwd=launch.cwd,
        env=launch.env,
        on_line=lambda _, text: lines.append(text),
        popen=launch.popen,
    )
    return code, lines


def test_run_as_hands_over_only_what_it_is_given(tmp_path: Path) -> None:
    mine, theirs = tmp_path / "private", tmp_path / "checkout"
    for directory in (mine, theirs / "deep"):
        directory.mkdir(parents=True)
    (theirs / "deep" / "file").write_text("x")
    (theirs / "link").symlink_to("/etc/passwd")

    RunAs(NOBODY, NOBODY, LIMITS).hand_over([theirs])

    assert {p.lstat().st_uid for p in [theirs, *theirs.rglob("*")]} == {NOBODY}
    assert Path("/etc/passwd").stat().st_uid == 0  # the link was not followed
    assert mine.stat().st_uid == 0


def test_run_as_runs_the_command_as_that_user_under_the_limits(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    launch = RunAs(NOBODY, NOBODY, LIMITS).launch(
        ["/usr/bin/python3", "-c", LIMITS_SCRIPT], cwd=tmp_path, env={"PATH": os.defpath}
    )

    code, lines = run_launch(launch)

    assert code == 0
    assert lines == ["65534 65534 []", "cpu 30", "nproc 64", f"fsize {1 << 20}", f"as {512 << 20}"]


def test_a_file_past_the_size_limit_cannot_be_written(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    launch = RunAs(NOBODY, NOBODY, LIMITS).launch(
        ["sh", "-c", "head -c 2000000 /dev/zero > big"], cwd=tmp_path, env={"PATH": os.defpath}
    )

    code, _ = run_launch(launch)

    assert code != 0
    assert (tmp_path / "big").stat().st_size == 1 << 20


def test_stop_all_kills_what_left_the_process_group(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    confinement = RunAs(NOBODY, NOBODY, LIMITS)
    # A new session and a double fork: neither is in any group shell.run knows of.
    launch = confinement.launch(
        ["sh", "-c", "setsid sleep 300 & (setsid sh -c 'sleep 301 &') ; sleep 0.2"],
        cwd=tmp_path,
        env={"PATH": os.defpath},
    )
    process = subprocess.Popen(launch.argv, cwd=launch.cwd, env=launch.env, **launch.popen)
    assert process.wait(timeout=30) == 0
    left = _processes_of(NOBODY)
    assert left

    confinement.stop_all()

    assert all(gone(pid) for pid in left)
    assert _processes_of(NOBODY) == []
    confinement.close()


def test_stop_all_says_so_when_a_process_survives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("builder.confine._processes_of", lambda uid: [os.getpid()])
    monkeypatch.setattr("builder.confine._kill_everything_as", lambda uid, gid: None)
    monkeypatch.setattr("builder.confine.KILL_ROUNDS", 2)

    with pytest.raises(ConfinementError, match="survived"):
        RunAs(NOBODY, NOBODY, LIMITS).stop_all()


def test_unconfined_runs_as_this_user_with_memory_and_cpu_limits(tmp_path: Path) -> None:
    confinement = Unconfined(LIMITS)
    launch = confinement.launch(
        ["/usr/bin/python3", "-c", LIMITS_SCRIPT], cwd=tmp_path, env={"PATH": os.defpath}
    )

    code, lines = run_launch(launch)

    assert code == 0
    ours = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    assert lines[1:] == ["cpu 30", f"nproc {ours}", f"fsize {1 << 20}", f"as {512 << 20}"]
    # No RLIMIT_NPROC: it would count every process of this user, the API's included.
    confinement.hand_over([tmp_path])
    confinement.stop_all()
    confinement.close()
    assert tmp_path.stat().st_uid == os.geteuid()


def test_the_preexec_sets_each_limit_soft_and_hard() -> None:
    # In this process: no core dumps is a limit the test run can live with.
    apply_rlimits([(resource.RLIMIT_CORE, 0)])()

    assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)


def test_rlimits_leave_out_what_a_cgroup_does() -> None:
    kinds = {kind for kind, _ in rlimits(LIMITS, memory=False, processes=False)}

    assert kinds == {resource.RLIMIT_CPU, resource.RLIMIT_FSIZE, resource.RLIMIT_CORE}


# --- the pipeline and its confinement ------------------------------------------------------


class Recording:
    """A confinement that runs commands as they are and records what the pipeline asked."""

    description = "a recording confinement"

    def __init__(self, *, fail_stop: bool = False) -> None:
        self.calls: list[str] = []
        self.handed: list[Path] = []
        self.fail_stop = fail_stop

    def hand_over(self, directories: Sequence[Path]) -> None:
        self.handed = list(directories)
        self.calls.append("hand_over")

    def launch(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> Launch:
        self.calls.append("launch")
        return Launch(list(argv), dict(env), cwd)

    def stop_all(self) -> None:
        self.calls.append("stop_all")
        if self.fail_stop:
            raise ConfinementError("processes of user 10001 survived SIGKILL")

    def close(self) -> None:
        self.calls.append("close")


def test_the_build_is_stopped_before_its_output_is_read(tmp_path: Path) -> None:
    confinement = Recording()
    spec = static_spec(tmp_path, build_command="true", output_directory=".")

    ok, sink = run(spec, confinement=confinement)

    assert ok
    assert confinement.calls == ["hand_over", "launch", "stop_all", "stop_all", "close"]
    assert [path.name for path in confinement.handed] == ["repo", "home"]
    assert "Commands run in: a recording confinement" in sink.lines()


def test_the_builders_own_directory_is_not_handed_over(tmp_path: Path) -> None:
    confinement = Recording()
    spec = static_spec(tmp_path, build_command="sh -c 'ls -ld .. ../private'", output_directory=".")

    ok, sink = run(spec, confinement=confinement)

    assert ok
    listing = sink.lines("build")
    workdir, private = listing[1], listing[2]
    assert workdir.startswith("drwx--x--x")  # traversable, not listable, not writable
    assert private.startswith("drwx------")


def test_a_build_whose_processes_cannot_be_stopped_is_not_uploaded(tmp_path: Path) -> None:
    spec = static_spec(tmp_path, build_command="true", output_directory=".")

    ok, sink = run(spec, confinement=Recording(fail_stop=True))

    assert not ok
    assert failure(sink) == (
        "upload failed: the build's processes could not all be stopped: "
        "processes of user 10001 survived SIGKILL"
    )
    assert not (tmp_path / "storage" / "__outputs").exists()


def test_a_build_that_floods_the_log_is_stopped(tmp_path: Path) -> None:
    flood = "sh -c 'yes 0123456789abcdef | head -n 300000'"
    spec = static_spec(tmp_path, build_command=flood, limits=BuildLimits(max_log_mb=1))

    ok, sink = run(spec)

    assert not ok
    assert failure(sink) == (
        "build failed: the build printed more than 1 MB of log (SCALEMESH_BUILD_MAX_LOG_MB)"
    )
    printed = sum(len(line) + 1 for line in sink.lines("build")[1:])
    assert (1 << 20) - 100 <= printed <= 1 << 20
