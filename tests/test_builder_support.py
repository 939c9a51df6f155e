"""Helpers for the builder tests: fixture repositories, a git HTTP server, event parsing.

Named `test_builder_*` to sit with the builder's tests; it holds no tests of its own.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from builder.logsink import Masker, StdoutSink
from builder.spec import BuildSpec

SITES = Path(__file__).parent / "fixtures" / "sites"
DEPLOYMENT_ID = "dpl-test"
PROJECT_ID = 7
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), **_GIT_IDENTITY}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def make_repo(
    path: Path, site: str | None = None, files: dict[str, str | bytes] | None = None
) -> tuple[Path, str]:
    """A git repository at `path` with a fixture site and/or `files`, committed; and its sha."""
    if site is not None:
        shutil.copytree(SITES / site, path)
    path.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "fixture")
    return path, git(path, "rev-parse", "HEAD")


def npm_env(tmp_path: Path) -> dict[str, str]:
    """Project env vars that keep npm off the network and out of the real home directory."""
    return {
        "npm_config_cache": str(tmp_path / "npm-cache"),
        "npm_config_offline": "true",
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        "npm_config_update_notifier": "false",
    }


def make_spec(repo: Path, sha: str, storage: Path, **overrides: Any) -> BuildSpec:
    values: dict[str, Any] = {
        "deployment_id": DEPLOYMENT_ID,
        "project_id": PROJECT_ID,
        "git_url": repo.as_uri(),
        "sha": sha,
        "storage_url": storage.as_uri(),
    }
    values.update(overrides)
    return BuildSpec(**values)


def parse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class CapturingSink:
    """A real `StdoutSink` (masking included) writing into memory."""

    masker: Masker = field(default_factory=lambda: Masker(()))
    buffer: io.StringIO = field(default_factory=io.StringIO)
    closed: bool = False

    def __post_init__(self) -> None:
        self._sink = StdoutSink(self.masker, self.buffer)

    def emit(self, event: dict[str, Any]) -> None:
        self._sink.emit(event)

    def close(self) -> None:
        self._sink.close()
        self.closed = True

    @property
    def events(self) -> list[dict[str, Any]]:
        return parse_events(self.buffer.getvalue())

    def lines(self, step: str | None = None) -> list[str]:
        return [
            event["text"]
            for event in self.events
            if event["type"] == "line" and (step is None or event["step"] == step)
        ]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether `pid` ends within `within` seconds (a sent SIGKILL lands asynchronously)."""
    give_up = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > give_up:
            return False
        time.sleep(0.02)
    return True


# --- a git smart-HTTP server on loopback ----------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class GitHttp:
    """Serves repositories under `root` over smart HTTP (`git http-backend`).

    It records each request's Authorization header and refuses requests without the expected
    one. With `protocol_v2=False` it speaks protocol v0, where a server refuses to send a commit
    no ref points at, like servers without `uploadpack.allowReachableSHA1InWant`.
    """

    root: Path
    token: str
    protocol_v2: bool = True
    authorizations: list[str | None] = field(default_factory=list)
    url: str = ""

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        authorization = environ.get("HTTP_AUTHORIZATION")
        self.authorizations.append(authorization)
        expected = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        if authorization != f"Basic {expected}":
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
            return [b"authentication required\n"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        cgi_env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(self.root),
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "PATH_INFO": environ["PATH_INFO"],
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "x-access-token",
            "REMOTE_ADDR": "127.0.0.1",
        }
        if self.protocol_v2 and environ.get("HTTP_GIT_PROTOCOL"):
            cgi_env["GIT_PROTOCOL"] = environ["HTTP_GIT_PROTOCOL"]
        output = subprocess.run(
            ["git", "http-backend"], env=cgi_env, input=body, capture_output=True, check=True
        ).stdout
        head, _, payload = output.partition(b"\r\n\r\n")
        status = "200 OK"
        headers: list[tuple[str, str]] = []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            else:
                headers.append((name, value.strip()))
        start_response(status, headers)
        return [payload]

    @contextmanager
    def serve(self) -> Iterator[GitHttp]:
        server: WSGIServer = make_server("127.0.0.1", 0, self.app, handler_class=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_port}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
