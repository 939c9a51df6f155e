"""Serve an httpx request handler (a fake's `handle`) as an ASGI app, for a real browser.

The fakes of GitHub answer `httpx.Request`s in process (`httpx.MockTransport`); a browser
needs them over real HTTP. `HandlerApp` turns each ASGI request into an `httpx.Request`,
calls the handler off the event loop, and sends its `httpx.Response` back. Serve it with
`tests.support.servers.uvicorn_in_thread`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
import httpx

Handler = Callable[[httpx.Request], httpx.Response]


class HandlerApp:
    """An ASGI app answering every HTTP request with `handler(request)`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = self._request(scope, body)
        response = await anyio.to_thread.run_sync(self.handler, request)
        content = response.read()
        headers = [
            (name, value)
            for name, value in response.headers.raw
            if name.lower() not in (b"content-length", b"transfer-encoding", b"content-encoding")
        ]
        headers.append((b"content-length", str(len(content)).encode()))
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        await send({"type": "http.response.body", "body": content})

    @staticmethod
    def _request(scope: dict[str, Any], body: bytes) -> httpx.Request:
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
        ]
        host = next((value for name, value in headers if name.lower() == "host"), "localhost")
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("raw_path") or scope["path"].encode()
        url = f"{scope.get('scheme', 'http')}://{host}{path.decode('latin-1')}"
        return httpx.Request(
            scope["method"], url + (f"?{query}" if query else ""), headers=headers, content=body
        )
