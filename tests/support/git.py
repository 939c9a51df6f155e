"""Local git repositories for tests: run git with a fixed identity, serve repos over smart HTTP.

`git()` ignores the developer's own git configuration (HOME is the repository, no system file),
so commits look the same on every machine.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd`; its standard output, stripped (raises if git fails)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), **_GIT_IDENTITY}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def head(repo: Path) -> str:
    """The commit `repo` has checked out."""
    return git(repo, "rev-parse", "HEAD")


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
