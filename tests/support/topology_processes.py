"""The processes of the topology test: `scalemesh serve` commands and a moto S3 server, each
one the test can start, kill -9 and start again on the same port.

Output goes to files (a pipe nobody reads would fill and stall the server); a failure message
quotes the end of them. Ports come from `reserved_port`, held until the server binds them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.support.ports import LOOPBACK, reserved_port
from tests.support.processes import CLI, ROOT, as_from_a_shell, http_client
from tests.support.waiting import wait_until

START_S = 60.0
"""A server's start on a loaded two-core machine: imports, migrations check, the lifespan."""
TAIL_CHARS = 4000


class Service:
    """One server process on `port`, started from `argv` with `env`; its output under `logs`."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        logs: Path,
        *,
        port: int,
        ready: str | None = None,
    ) -> None:
        """`ready`: the path that answers 200 once it may take traffic (its readiness probe);
        without one, any HTTP answer will do."""
        self.name = name
        self.ready = ready
        self.argv = argv
        self.env = env
        self.logs = logs
        self.port = port
        self.url = f"http://{LOOPBACK}:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._starts = 0
        logs.mkdir(parents=True, exist_ok=True)

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> Service:
        """Start it (again), and return once it is ready."""
        return self.launch().wait_ready()

    def launch(self) -> Service:
        """Start it (again) without waiting: several services then start side by side."""
        if self.running:
            return self
        self._starts += 1
        stem = self.logs / f"{self._starts}"
        with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                # Its own session: the test's Ctrl-C and process group are not its own.
                start_new_session=True,
                preexec_fn=as_from_a_shell,
            )
        return self

    def wait_ready(self) -> Service:
        wait_until(self._answers, within=START_S, interval=0.1, what=self.describe)
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        exit_code = self.process.poll()
        assert exit_code is None, f"{self.name} exited with {exit_code}:\n{self.output()}"
        try:
            with http_client() as client:
                answer = client.get(self.url + (self.ready or "/"), timeout=2)
        except httpx.TransportError:
            return False
        return self.ready is None or answer.status_code == 200

    def kill(self) -> None:
        """`kill -9`: no shutdown, no goodbye; what a crashed pod or machine looks like."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        """SIGTERM, as an orchestrator stops it, then SIGKILL for what still runs."""
        self.terminate()
        self.reap()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def reap(self) -> None:
        """Wait for a `terminate`d service to end; kill what is left of it after a while."""
        if self.process is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)
        # Granian's workers, uvicorn's, and anything else left in its session.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def output(self) -> str:
        """The end of what this service wrote to stderr and stdout, latest start first."""
        texts = []
        for path in sorted(self.logs.glob("*.err"), reverse=True) + sorted(
            self.logs.glob("*.out"), reverse=True
        ):
            texts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-TAIL_CHARS:]}")
        return "\n".join(texts)

    def describe(self) -> str:
        return f"{self.name} on {self.url}:\n{self.output()}"


def stop_all(services: Sequence[Service]) -> None:
    """Stop them side by side: each gets its graceful shutdown at the same time."""
    for service in services:
        service.terminate()
    for service in services:
        service.reap()


def scalemesh(
    name: str,
    part: str,
    env: dict[str, str],
    logs: Path,
    *,
    port: int | None = None,
    ready: str | None = None,
    workers: int = 1,
) -> Service:
    """`scalemesh serve <part>` as the Dockerfile runs it, on a loopback port; ready once
    `ready` (its readiness probe's path) answers 200."""
    port = port or reserved_port()
    argv = [*CLI, "serve", part, "--host", LOOPBACK, "--port", str(port)]
    argv += ["--workers", str(workers)]
    return Service(name, argv, env, logs / name, port=port, ready=ready)


def moto_s3(logs: Path) -> Service:
    """moto's S3 in a process of its own, as an S3-compatible store behind `AWS_ENDPOINT_URL`."""
    port = reserved_port()
    argv = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCALEMESH_")}
    return Service("moto", argv, env, logs / "moto", port=port)
