"""A scripted HTTP server in a thread: answers each POST with the next (status, body) given, and
keeps every request, for the builder's client to meet failures a real API rarely shows."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.ports import LOOPBACK


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Script:
    """What the server answers, in order; the last answer repeats."""

    answers: list[tuple[int, bytes]]
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def next_answer(self) -> tuple[int, bytes]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@contextlib.contextmanager
def scripted(*answers: tuple[int, bytes], keep_alive: bool = True) -> Iterator[Script]:
    """Serve `answers`; without `keep_alive`, HTTP/1.0: each connection ends with its answer."""
    script = Script(list(answers))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            script.received.append(Received(self.path, dict(self.headers.items()), body))
            status, answer = script.next_answer()
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script.url = f"http://{LOOPBACK}:{server.server_address[1]}"
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
