"""The `scalemesh` command run as a user runs it: a fresh process, to completion or in the back.

Ports for servers started this way come from `tests.support.ports.reserved_port`, or are 0
and read back from what the command announces.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.waiting import WAIT_S, signal_pending, wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
CLI = [sys.executable, "-m", "app.cli"]
COMMAND_TIMEOUT_S = 60
"""Generous: a slow two-core machine spends most of a short command importing."""
STOP_TIMEOUT_S = 10


def cli_env(data_dir: Path) -> dict[str, str]:
    """This process's environment without any SCALEMESH_* from outside, and a data directory."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SCALEMESH_")}
    environ["SCALEMESH_DATA_DIR"] = str(data_dir)
    return environ


def as_from_a_shell() -> None:
    """In the child, before exec: Ctrl-C and SIGTERM act as they do for a command a user
    starts from a shell. An ignored SIGINT is inherited across exec, and Python then leaves it
    ignored, so a test process that ignores it would give its commands a Ctrl-C that does
    nothing."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def run_cli(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=env,
        cwd=ROOT,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
        # No controlling terminal: getpass then reads the test's stdin, not the developer's tty.
        start_new_session=True,
        preexec_fn=as_from_a_shell,
    )


class Running:
    """A server command in the background, its output in files (pipes could fill and block it)."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: Path) -> None:
        self.process = process
        self.stderr_path = stderr

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_until_ok(self, client: httpx.Client, url: str) -> httpx.Response:
        """Poll `url` until it answers 200; fail early if the process dies."""

        def answered() -> httpx.Response | None:
            exit_code = self.process.poll()
            assert exit_code is None, f"exited with {exit_code} before answering:\n{self.stderr}"
            try:
                response = client.get(url)
            except httpx.TransportError:
                return None
            return response if response.status_code == 200 else None

        response = wait_until(answered, interval=0.1, what=lambda: f"{url} ready:\n{self.stderr}")
        assert response is not None
        return response

    def wait_for_stderr(self, text: str) -> None:
        def printed() -> bool:
            if text in self.stderr:
                return True
            assert self.process.poll() is None, f"exited before printing {text!r}:\n{self.stderr}"
            return False

        wait_until(printed, what=lambda: f"{text!r} printed:\n{self.stderr}")

    def _delivered(self, sig: signal.Signals) -> None:
        wait_until(lambda: not signal_pending(self.process.pid, sig), what=f"{sig.name} delivered")

    def stop(self, *signals: signal.Signals) -> int:
        for sig in signals:
            self.process.send_signal(sig)
            # Delivered before the next is sent: the kernel merges two pending alike signals.
            self._delivered(sig)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            names = "+".join(sig.name for sig in signals)
            pytest.fail(f"still running {STOP_TIMEOUT_S} s after {names}:\n{self.stderr}")


@contextlib.contextmanager
def running(
    *args: str, env: dict[str, str], logs: Path, stdin: int = subprocess.DEVNULL
) -> Iterator[Running]:
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "stdout").open("wb") as out, (logs / "stderr").open("wb") as err:
        process = subprocess.Popen(
            [*CLI, *args],
            env=env,
            cwd=ROOT,
            stdin=stdin,
            stdout=out,
            stderr=err,
            # Its own process group: cleanup below can also reach uvicorn's worker processes.
            start_new_session=True,
            preexec_fn=as_from_a_shell,
        )
        try:
            yield Running(process, logs / "stderr")
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=WAIT_S)
            if process.stdin is not None:
                process.stdin.close()


def http_client() -> httpx.Client:
    # trust_env=False: an HTTP(S)_PROXY in the environment must not capture localhost requests.
    return httpx.Client(timeout=5, trust_env=False)
