"""The proxy's HTTP/1.1 server: uvicorn's protocol, with remembered answers written at once.

For each request uvicorn (httptools) builds a scope and a `RequestResponseCycle`, starts a
task that runs the ASGI app, and encodes and checks every header the app sends. For a
request the proxy has answered before (`Proxy.replay_wire`) that is nearly all of the cost:
the answer is already built, its headers already encoded and checked once (`proxy.wire`).
This protocol asks for such an answer as soon as the request's headers are parsed and
writes it itself: status line, uvicorn's own headers (date, server), the answer, and
`connection: close` where uvicorn would add it. Anything else, or any request while an
earlier one on the connection is still being answered, goes to uvicorn untouched, so
keep-alive, pipelining, timeouts, flow control and shutdown stay uvicorn's.

A large body of a file kept open (`proxy.open_files`) leaves by sendfile(2): the kernel sends
the file's cached pages, not a copy of the bytes made through the socket. What the socket does
not take at once is queued on the transport from memory, so backpressure stays uvicorn's too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Iterable
from typing import Any, ClassVar, Protocol

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from proxy.memo_keys import MemoKey, memo_key_from
from proxy.replays import WireAnswer

_READS = {b"GET": "GET", b"HEAD": "HEAD"}
"""The methods an answer is ever remembered for (`Proxy.handle`), as ASGI spells them."""
_CLOSE = b"connection: close\r\n"
SEPARATE_BODY_BYTES = 64 * 1024
"""A body this large is handed to the transport beside the headers, not copied after them."""
_APP_LAYERS = 8
"""How deep the proxy app may sit under uvicorn's middleware (forwarded headers: one)."""


class Replayer(Protocol):
    """What the protocol asks of the app (`ProxyApp.replay_wire`)."""

    def replay_wire(
        self, memo_key: MemoKey, headers: Iterable[tuple[bytes, bytes]]
    ) -> WireAnswer | None: ...


def find_replayer(app: object) -> Replayer | None:
    """The proxy app under the middleware uvicorn wraps it in, or None (any other app)."""
    for _ in range(_APP_LAYERS):
        if callable(getattr(app, "replay_wire", None)):
            return app  # type: ignore[return-value]  # checked just above, structurally
        app = getattr(app, "app", None)
    return None


class _NoWaiter:
    def set(self) -> None:
        """Nothing waits on an answer the protocol wrote itself."""


class _Answered:
    """Stands for uvicorn's `RequestResponseCycle` once the protocol has answered: complete.

    uvicorn's callbacks read the last cycle (a body arriving, the next request, the
    connection closing, shutdown), and each does nothing more to a complete one."""

    response_complete = True
    keep_alive = True
    disconnected = False
    message_event = _NoWaiter()


_ANSWERED = _Answered()


class ReplayingProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that writes a remembered answer in the parser's callback."""

    _defaults: ClassVar[tuple[object, bytes]] = (None, b"")
    """uvicorn's own headers as sent, and the list they were encoded from (it replaces the
    list when the date changes, once a second)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # An access log or a concurrency limit is uvicorn's to apply: then it answers all.
        # (uvicorn logs each access at INFO: a logger that drops INFO logs nothing.)
        logs = self.access_log and self.access_logger.isEnabledFor(logging.INFO)
        plain = not logs and self.limit_concurrency is None and not self.root_path
        self._replayer = find_replayer(self.app) if plain else None
        self._file_socket: socket.socket | None = None
        """This connection's own descriptor, for sendfile: made at the first, closed with it."""
        self._sends_files = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn types it as the base Transport, as asyncio does
        super().connection_made(transport)
        # A TLS transport encrypts what it writes: a file sent past it would be plain text.
        tls = transport.get_extra_info("sslcontext") is not None
        self._sends_files = not tls and transport.get_extra_info("socket") is not None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._file_socket is not None:
            self._file_socket.close()
            self._file_socket = None

    def on_headers_complete(self) -> None:
        if not self._replayed():
            super().on_headers_complete()

    def _replayed(self) -> bool:
        """Write the remembered answer to this request, if there is one and it may go now."""
        method = _READS.get(self.parser.get_method())
        cycle = self.cycle
        if (
            method is None
            or self._replayer is None
            # Answers go out in the order asked: uvicorn queues this one behind the other.
            or (cycle is not None and not cycle.response_complete)
            or self.flow.write_paused
            or self.expect_100_continue
            or self.parser.should_upgrade()
        ):
            return False
        url = httptools.parse_url(self.url)
        key = memo_key_from(self.headers, method, url.path, url.query or b"")
        answer = self._replayer.replay_wire(key, self.headers)
        if answer is None:
            return False
        status, head, body, fd = answer
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        parts = [STATUS_LINE[status], self._default_head(), head]
        if not keep_alive:
            parts.append(_CLOSE)
        parts.append(b"\r\n")
        if method == "HEAD" or not body:
            self.transport.write(b"".join(parts))
        elif len(body) < SEPARATE_BODY_BYTES:
            parts.append(body)
            self.transport.write(b"".join(parts))
        else:
            lines = b"".join(parts)
            if fd is None or not self._sent_from_file(lines, body, fd):
                self.transport.writelines((lines, body))
        self.cycle = _ANSWERED  # type: ignore[assignment]  # see `_Answered`
        if not keep_alive:
            self.transport.close()
        self.on_response_complete()
        return True

    def _sent_from_file(self, head: bytes, body: bytes, fd: int) -> bool:
        """Send `head`, then `body` from the file `fd` (its first `len(body)` bytes, the same
        bytes); what the socket does not take now is queued on the transport from memory.

        False, having sent nothing, when this would jump the transport's queue or cannot be
        done on this connection: the caller writes it all then."""
        transport = self.transport
        if not self._sends_files or transport.get_write_buffer_size():
            return False
        sock = self._file_socket or self._socket_for_files()
        try:
            # MSG_MORE: the headers wait for the body's first pages, one packet, not two.
            sent = sock.send(head, socket.MSG_MORE)
        except OSError:
            # Full (EAGAIN), or broken: the transport's own write waits or reports it.
            return False
        if sent < len(head):
            transport.writelines((memoryview(head)[sent:], body))
            return True
        try:
            done = os.sendfile(sock.fileno(), fd, 0, len(body))
        except OSError:
            done = 0  # as above: the rest goes through the transport
        if done < len(body):
            transport.write(memoryview(body)[done:])
        return True

    def _socket_for_files(self) -> socket.socket:
        # asyncio lends a wrapper that may not send; this descriptor is the protocol's own.
        raw = self.transport.get_extra_info("socket")
        sock = socket.socket(fileno=os.dup(raw.fileno()))
        sock.setblocking(False)
        self._file_socket = sock
        return sock

    def _default_head(self) -> bytes:
        current = self.server_state.default_headers
        encoded = type(self)._defaults
        if encoded[0] is not current:
            lines = b"".join(b"%s: %s\r\n" % (name, value) for name, value in current)
            encoded = type(self)._defaults = (current, lines)
        return encoded[1]
