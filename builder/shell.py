"""Run one command in its own process group, streaming its output line by line as it comes."""

from __future__ import annotations

import codecs
import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

OnLine = Callable[[str, str], None]
"""Called with ("stdout" | "stderr", text) for each line, in the order the lines arrive."""

MAX_LINE = 1 << 20
"""Characters held for one line; a longer line arrives in pieces (bounds memory, not display)."""
KILL_GRACE = 3.0
"""Seconds between SIGTERM and SIGKILL when a command is stopped. Shorter than the 5 s the local
runner (and ECS's 30 s) give the builder itself after its SIGTERM, so the builder is still alive
to finish the job: its commands run in their own session, where a signal to its group never
reaches them."""
LINGER = 2.0
"""Seconds to keep reading after the command exits while something it started holds the pipes."""
MAX_SIGNAL = 64
"""Linux's highest signal number (real-time ones included)."""
_POLL = 0.25
_READ_SIZE = 64 * 1024


class ShellError(Exception):
    """The command could not be run, or did not finish in time."""


class TimedOut(ShellError):
    """The deadline passed; the command and everything it started were stopped."""


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_line: OnLine,
    deadline: float | None = None,
    kill_grace: float = KILL_GRACE,
    max_line: int = MAX_LINE,
    popen: Mapping[str, Any] | None = None,
) -> int:
    """Run `argv` and return its exit code (negative: killed by that signal).

    `env` is the command's whole environment. `popen` are more `subprocess.Popen` arguments
    (a confinement's user, group, preexec_fn: `builder.confine.Launch.popen`). `deadline` is
    a `time.monotonic()` value; past it the process group gets SIGTERM, then SIGKILL after
    `kill_grace` seconds, and `TimedOut` is raised. Whatever the command leaves running in its
    group when it ends is killed too.
    """
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        try:
            process = subprocess.Popen(  # noqa: S603 - an argv list, never a shell string
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out_write,
                stderr=err_write,
                start_new_session=True,
                **(popen or {}),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            # SubprocessError: a confinement's preexec_fn failed (a cgroup or rlimit refused).
            raise ShellError(
                f"cannot run {argv[0]}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        finally:
            os.close(out_write)
            os.close(err_write)
        lines = {
            out_read: _Lines("stdout", on_line, max_line),
            err_read: _Lines("stderr", on_line, max_line),
        }
        try:
            _pump(process, lines, deadline)
        except BaseException:
            # A timeout, or the builder itself being stopped: leave nothing running behind.
            _stop(process.pid, process, kill_grace)
            process.wait()
            raise
        exit_code = process.wait()
        _signal_group(process.pid, signal.SIGKILL)
        return exit_code
    finally:
        os.close(out_read)
        os.close(err_read)


def killed_by(code: int) -> int:
    """The signal that ended a command with exit `code`, else 0: `run` answers -N for signal N,
    and a sandbox reports a command killed by signal N as exit code 128 + N, as a shell does."""
    return -code if code < 0 else code - 128 if 128 < code <= 128 + MAX_SIGNAL else 0


def signal_name(number: int) -> str:
    """`SIGKILL` for 9; real-time signals have numbers, not names."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _pump(
    process: subprocess.Popen[bytes], lines: dict[int, _Lines], deadline: float | None
) -> None:
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        for fd in lines:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimedOut("timed out")
            if exited_at is None and process.poll() is not None:
                exited_at = now
            if exited_at is not None and (not selector.get_map() or now - exited_at >= LINGER):
                break
            wait = _POLL if deadline is None else min(_POLL, deadline - now)
            if not selector.get_map():
                # The command closed its output but runs on: just wait for it.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(wait)
                continue
            for key, _ in selector.select(wait):
                data = os.read(key.fd, _READ_SIZE)
                if data:
                    lines[key.fd].feed(data)
                else:
                    selector.unregister(key.fd)
    for reader in lines.values():
        reader.finish()


class _Lines:
    """Turns one pipe's bytes into lines: UTF-8 with replacement, `\\r` progress collapsed."""

    def __init__(self, stream: str, on_line: OnLine, max_line: int) -> None:
        self._stream = stream
        self._on_line = on_line
        self._max_line = max_line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""

    def feed(self, data: bytes) -> None:
        *complete, self._buffer = (self._buffer + self._decoder.decode(data)).split("\n")
        for line in complete:
            self._emit(line)
        while len(self._buffer) >= self._max_line:
            piece, self._buffer = self._buffer[: self._max_line], self._buffer[self._max_line :]
            self._emit(piece)

    def finish(self) -> None:
        rest = self._buffer + self._decoder.decode(b"", final=True)
        self._buffer = ""
        if rest:
            self._emit(rest)

    def _emit(self, line: str) -> None:
        # A progress bar redraws with `\r`: keep what a terminal would finally show.
        shown = line.rstrip("\r").rsplit("\r", 1)[-1]
        for start in range(0, max(len(shown), 1), self._max_line):
            self._on_line(self._stream, shown[start : start + self._max_line])


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` (0: just probe) to the process group; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _stop(pgid: int, process: subprocess.Popen[bytes], grace: float) -> None:
    _signal_group(pgid, signal.SIGTERM)
    give_up = time.monotonic() + grace
    while time.monotonic() < give_up:
        process.poll()  # reap the leader, or its zombie keeps the group alive
        if not _signal_group(pgid, 0):
            return
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)
