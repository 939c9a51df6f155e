"""Commands run in their own process group, stream their output live, and are stopped in time."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from builder import shell
from tests.support.waiting import WAIT_S, gone

ENV = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}


class Recorder:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, stream: str, text: str) -> None:
        self.lines.append((stream, text))


def sh(script: str, tmp_path: Path, max_line: int = shell.MAX_LINE) -> tuple[int, Recorder]:
    recorder = Recorder()
    code = shell.run(
        ["sh", "-c", script], cwd=tmp_path, env=ENV, on_line=recorder, max_line=max_line
    )
    return code, recorder


def test_stdout_and_stderr_arrive_interleaved_in_order(tmp_path: Path) -> None:
    code, recorder = sh(
        "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; sleep 0.1; echo four >&2",
        tmp_path,
    )

    assert code == 0
    assert recorder.lines == [
        ("stdout", "one"),
        ("stderr", "two"),
        ("stdout", "three"),
        ("stderr", "four"),
    ]


def test_lines_arrive_while_the_command_still_runs(tmp_path: Path) -> None:
    lines: list[str] = []

    def answer(stream: str, text: str) -> None:
        lines.append(text)
        if text == "early":
            (tmp_path / "go").touch()  # the command goes on only once "early" reached us

    code = shell.run(
        ["sh", "-c", "echo early; while [ ! -e go ]; do sleep 0.01; done; echo late"],
        cwd=tmp_path,
        env=ENV,
        on_line=answer,
        deadline=time.monotonic() + WAIT_S,  # were lines held back, the command would hang
    )

    assert code == 0
    assert lines == ["early", "late"]


def test_the_exit_code_is_returned(tmp_path: Path) -> None:
    assert sh("exit 3", tmp_path)[0] == 3


def test_a_command_killed_by_a_signal_returns_minus_the_signal(tmp_path: Path) -> None:
    assert sh("kill -9 $$", tmp_path)[0] == -9


def test_the_command_gets_exactly_the_env_and_cwd_given(tmp_path: Path) -> None:
    recorder = Recorder()
    shell.run(["env"], cwd=tmp_path, env={"ONLY": "this", "PATH": ENV["PATH"]}, on_line=recorder)
    shell.run(["pwd"], cwd=tmp_path, env=ENV, on_line=recorder)

    assert sorted(text for _, text in recorder.lines[:-1]) == ["ONLY=this", f"PATH={ENV['PATH']}"]
    assert recorder.lines[-1] == ("stdout", str(tmp_path))


def test_output_is_decoded_forgivingly(tmp_path: Path) -> None:
    _, recorder = sh(
        r"printf 'caf\303\251 \377\n'; printf 'a\rb\rfinal\r\n'; printf 'no newline'", tmp_path
    )

    assert recorder.lines == [
        ("stdout", "café \ufffd"),
        ("stdout", "final"),  # what a terminal shows after `\r` redraws
        ("stdout", "no newline"),
    ]


def test_long_lines_are_split(tmp_path: Path) -> None:
    _, recorder = sh(
        "printf '%s\\n' 0123456789abcdefghij; printf 0123456789abc", tmp_path, max_line=8
    )

    assert [text for _, text in recorder.lines] == [
        "01234567",
        "89abcdef",
        "ghij",
        "01234567",
        "89abc",
    ]


def test_blank_lines_are_kept(tmp_path: Path) -> None:
    _, recorder = sh("echo; echo x", tmp_path)

    assert recorder.lines == [("stdout", ""), ("stdout", "x")]


def test_a_missing_program_is_a_shell_error(tmp_path: Path) -> None:
    with pytest.raises(shell.ShellError, match="cannot run no-such-program: No such file"):
        shell.run(["no-such-program"], cwd=tmp_path, env=ENV, on_line=Recorder())


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    recorder = Recorder()

    # The command would wait an hour for its children: it ends only because it is killed.
    with pytest.raises(shell.TimedOut):
        shell.run(
            ["sh", "-c", "sleep 3600 & echo $!; sleep 3600 & echo $!; wait"],
            cwd=tmp_path,
            env=ENV,
            on_line=recorder,
            deadline=time.monotonic() + 1,
            kill_grace=3,
        )

    pids = [int(text) for _, text in recorder.lines]
    assert len(pids) == 2
    assert all(gone(pid) for pid in pids)


def test_what_ignores_sigterm_gets_sigkill(tmp_path: Path) -> None:
    recorder = Recorder()
    script = "trap '' TERM; sh -c \"trap '' TERM; sleep 60\" & echo $!; wait"

    with pytest.raises(shell.TimedOut):
        shell.run(
            ["sh", "-c", script],
            cwd=tmp_path,
            env=ENV,
            on_line=recorder,
            deadline=time.monotonic() + 0.5,
            kill_grace=0.5,
        )

    assert gone(int(recorder.lines[0][1]))


def test_what_the_command_leaves_running_is_killed_when_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shell, "LINGER", 0.2)  # how long its output may stay open after it ends
    # The leftover holds the output open for an hour: run() returns only because it is killed.
    code, recorder = sh("sleep 3600 & echo $!", tmp_path)

    assert code == 0
    assert gone(int(recorder.lines[0][1]))


def test_a_command_that_closes_its_output_is_still_waited_for(tmp_path: Path) -> None:
    code, recorder = sh("echo bye; exec >&- 2>&-; sleep 0.3; touch ended; exit 4", tmp_path)

    assert code == 4
    assert recorder.lines == [("stdout", "bye")]
    assert (tmp_path / "ended").exists()  # run() returned after the command's very end


def test_a_failing_callback_stops_the_command_and_propagates(tmp_path: Path) -> None:
    pids: list[int] = []

    def on_line(stream: str, text: str) -> None:
        pids.append(int(text))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shell.run(["sh", "-c", "sleep 60 & echo $!; wait"], cwd=tmp_path, env=ENV, on_line=on_line)

    assert gone(pids[0])


NOBODY = {"user": 65534, "group": 65534, "extra_groups": []}


def test_a_command_can_run_as_another_user(tmp_path: Path) -> None:
    recorder = Recorder()
    tmp_path.chmod(0o755)
    if os.geteuid() != 0:
        # Only root may switch users: say so rather than run the command as ourselves.
        with pytest.raises(shell.ShellError):
            shell.run(["id", "-u"], cwd=tmp_path, env=ENV, on_line=recorder, popen=NOBODY)
        return
    code = shell.run(
        ["sh", "-c", "id -u; id -g; id -G"],
        cwd=tmp_path,
        env=ENV,
        on_line=recorder,
        popen=NOBODY,
    )
    assert code == 0
    assert recorder.lines == [("stdout", "65534"), ("stdout", "65534"), ("stdout", "65534")]
