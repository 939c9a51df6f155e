"""`make` targets as a developer runs them from a terminal: in a session of their own (so a
Ctrl-C goes to their process group), with everything they started killed afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.support.processes import ROOT, as_from_a_shell, cli_env


def session_members(session: int) -> list[int]:
    """The processes of `session`: the target's own and those it started in groups of theirs."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            # The fields after the command's closing parenthesis: state, ppid, pgrp, session.
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(fields[3]) == session:
                found.append(int(entry.name))
    return found


@contextlib.contextmanager
def running_make(
    target: str, data_dir: Path, variables: Mapping[str, int], logs: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`make <target> NAME=value...` on `data_dir`, its output in `logs`."""
    assignments = [f"{name}={value}" for name, value in variables.items()]
    # `-o`: the install is what it is (the suite runs from it); never reinstall mid-test.
    argv = ["make", "--no-print-directory", "-o", ".venv/.installed", target, *assignments]
    with open(logs, "wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=cli_env(data_dir),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # A session of its own, as a terminal gives the command a user types.
            start_new_session=True,
            preexec_fn=as_from_a_shell,
        )
    try:
        yield process
    finally:
        for pid in session_members(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()
