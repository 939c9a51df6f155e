"""The processes `bench/proxy.py` starts: free ports, one-off requests, start, wait and stop."""

from __future__ import annotations

import http.client
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bench.proxy_site import HOST

START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(port: int, path: str, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    """One GET with our Host header and no Accept-Encoding (http.client sends `identity`)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": HOST})
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        connection.close()


class Processes:
    """Every subprocess this run starts, stopped in reverse order at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Path:
        log = self.logs / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(  # noqa: S603 - fixed argv of our own tools
                argv, env=dict(env) if env is not None else None, stdout=sink, stderr=sink
            )
        self.running.append((name, process))
        return log

    def wait_http(self, name: str, port: int, path: str) -> None:
        """Until `path` answers 200 on `port`, or the process dies, or time runs out."""
        process = dict(self.running)[name]
        give_up = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")
            try:
                if fetch(port, path, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > give_up:
                raise RuntimeError(f"{name} did not answer on :{port}:\n{self.tail(name)}")
            time.sleep(0.1)

    def tail(self, name: str) -> str:
        lines = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()
        return "\n".join(lines[-20:])

    def stop_all(self) -> None:
        while self.running:
            _, process = self.running.pop()
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


@contextmanager
def processes(logs: Path) -> Iterator[Processes]:
    running = Processes(logs)
    try:
        yield running
    finally:
        running.stop_all()
