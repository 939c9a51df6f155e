"""The proxy under granian's RSGI: the same `Proxy`, without the ASGI bridge's cost per request.

Under RSGI granian hands the app a scope whose headers are read on demand and takes a whole
answer in one call (`response_bytes`), where ASGI builds a dict per request and awaits two
messages; on the proxy's hot path that bridge is most of the gap to nginx (`bench/proxy.py`).
`scalemesh serve proxy` runs this; `scalemesh dev` (uvicorn) and tests also run the ASGI app,
`proxy.asgi.ProxyApp`, which this extends.

RSGI gives the path already percent-decoded (`%2F` is `/`), never its raw bytes. The decoded
path is encoded again (`quote`: everything but unreserved characters and `/`) and goes through
the very `path_to_key` that checks ASGI's raw paths, which decodes it once and normalises and
checks it once: no request leaves its deployment's prefix. A `%2F` that ASGI refuses (400) is
a `/` here, usually a 404.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol
from urllib.parse import quote

from app.settings import Settings
from proxy.asgi import ProxyApp, running
from proxy.sending import PATHSEND, Message, Scope

_READ_HEADERS = ("host", "accept-encoding", "if-none-match", "range", "if-range")
"""The request headers an answer depends on, in the memo key's order (see `memo_key_of`)."""


class _Transport(Protocol):
    async def send_bytes(self, data: bytes) -> None: ...


def _bytes(text: str) -> bytes:
    # granian decodes what it receives as UTF-8; a value no server would send still encodes.
    return text.encode("utf-8", "replace")


class _Answer:
    """ASGI's `send`, answering through an RSGI protocol: what `Proxy.handle` talks to."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.stream: _Transport | None = None

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            self.headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"]
            ]
        elif kind == PATHSEND:
            self.protocol.response_file(self.status, self.headers, message["path"])
        elif self.stream is not None:
            # granian ends the stream once Content-Length bytes went out: the empty last
            # message has nothing to add.
            if message["body"]:
                await self.stream.send_bytes(message["body"])
        elif message.get("more_body"):
            self.stream = self.protocol.response_stream(self.status, self.headers)
            await self.stream.send_bytes(message["body"])
        else:
            self.protocol.response_bytes(self.status, self.headers, message["body"])


class ProxyServer(ProxyApp):
    """`ProxyApp` with granian's RSGI entry points; its ASGI side is unchanged."""

    _stack: contextlib.AsyncExitStack

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        proxy = self.proxy
        headers = scope.headers
        found = [_bytes(headers.get(name, "")) for name in _READ_HEADERS]
        raw_path = quote(scope.path).encode("ascii")
        method = scope.method
        memo_key = (found[0], method, raw_path, _bytes(scope.query_string), *found[1:])
        hit = proxy.recall(memo_key)  # eight items, as ASGI's
        if hit is not None and not hit[0].target.protected:
            replay, body = hit
            protocol.response_bytes(replay.start["status"], replay.headers, body)
            return
        asgi_scope: Scope = {
            "type": "http",
            "method": method,
            "path": scope.path,
            "raw_path": raw_path,
            "query_string": memo_key[3],
            "headers": [(_bytes(k), _bytes(v)) for k, v in headers.items()],
            "scheme": scope.scheme,
            "extensions": {PATHSEND: {}},
        }
        await proxy.handle(asgi_scope, _Answer(protocol), memo_key)

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open what the proxy holds (ASGI's lifespan startup), before the loop serves."""
        self._stack = contextlib.AsyncExitStack()
        self.proxy = loop.run_until_complete(
            self._stack.enter_async_context(running(self.settings))
        )

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self._stack.aclose())


def create_proxy_server_from_env() -> ProxyServer:
    """The factory `scalemesh serve proxy` gives granian: settings read in each worker."""
    return ProxyServer(Settings.from_env())
