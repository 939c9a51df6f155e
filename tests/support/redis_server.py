"""A `redis-server` of a test's own, on a port of its own, that the test may stop and start.

The shared Redis (`SCALEMESH_TEST_REDIS_URL`) must never be stopped, so a test about Redis
going away runs its own: `stop()` kills it (as a crash or a restart would), `start()` brings it
back on the same port, empty (it keeps nothing on disk), so old connections see it closed.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from types import TracebackType

from tests.support.ports import LOOPBACK, reserved_port
from tests.support.waiting import wait_until


def redis_server_binary() -> str:
    """`redis-server` on PATH; the machines that run the suite have it (CI's image too)."""
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not on PATH: install Debian's redis-server")
    return found


class RedisServer:
    """One `redis-server` process on `port`; `url` points at database 0."""

    def __init__(self) -> None:
        self.port = reserved_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        if self._process is not None:
            return self
        self._process = subprocess.Popen(
            [
                redis_server_binary(),
                "--bind",
                LOOPBACK,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, what=f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        """Kill it at once (SIGKILL): connections drop as in a crash."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None

    def _answers(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
