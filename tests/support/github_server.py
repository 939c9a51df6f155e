"""The GitHub fake served over real HTTP, for API processes that are not this test process.

`FakeGitHubApi` answers `httpx.Request`s in memory; respx can only hand it the requests of this
process. Here a threaded HTTP server on a port of its own turns each request it receives into
an `httpx.Request` for the fake and writes the fake's answer back, so any number of
`scalemesh serve api` processes reach one fake through `SCALEMESH_GITHUB_API_URL`, and the test
reads what GitHub was told from the same object. A failure the fake raises (`fail(...,
error=httpx.ConnectError(...))`) drops the connection without an answer, as a network fault.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from tests.support.github_fake import FakeGitHubApi
from tests.support.ports import LOOPBACK

_HOP_BY_HOP = frozenset({"connection", "transfer-encoding", "content-length", "content-encoding"})


def _handler(fake: FakeGitHubApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = httpx.Request(
                self.command,
                fake.base_url + self.path,
                headers=list(self.headers.items()),
                content=body,
            )
            try:
                response = fake.handle(request)
            except httpx.HTTPError:
                # What the fake was told to make of this request: no answer at all.
                self.close_connection = True
                return
            content = response.read()
            self.send_response(response.status_code)
            for name, value in response.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


@contextlib.contextmanager
def github_over_http() -> Iterator[FakeGitHubApi]:
    """A `FakeGitHubApi` whose `base_url` is a live HTTP server, until the block ends."""
    server = ThreadingHTTPServer((LOOPBACK, 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    fake = FakeGitHubApi(f"http://{LOOPBACK}:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
