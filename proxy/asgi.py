"""Build the proxy application from settings (a placeholder that serves no deployments yet).

The real proxy, which finds the deployment for a `Host` and serves its files from storage, lands
in a later issue. Until then this answers the health check on every host and a branded 404
everywhere else, so `scalemesh dev` and `scalemesh serve proxy` already run end to end.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from app.settings import Settings

# ASGI's own shapes; `Any` is allowed here because the scope is the raw edge of the protocol.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEALTH_PATH = "/_scalemesh/health"
_READ_METHODS = frozenset({"GET", "HEAD"})

_NOT_FOUND_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>No deployment here · Scale Mesh</title>
<style>
body{{margin:0;min-height:100vh;display:grid;place-items:center;background:#0b1020;color:#e6e8ef;
font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}}
main{{max-width:32rem;padding:2rem;text-align:center}}
h1{{margin:0 0 .5rem;font-size:1.75rem}}
code{{padding:.1rem .35rem;border-radius:.25rem;background:#1c2440;color:#9fb4ff}}
footer{{margin-top:2rem;color:#7d859c;font-size:.85rem}}
</style>
</head>
<body>
<main>
<h1>No deployment here</h1>
<p>Nothing is deployed at <code>{host}</code>.</p>
<footer>Scale Mesh</footer>
</main>
</body>
</html>
"""


def create_proxy(settings: Settings) -> ASGIApp:
    """The proxy ASGI app; `settings` will choose storage and hosts once it serves deployments."""

    async def proxy(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await _http(scope, send)
        else:
            # A websocket, the only other kind of connection; deployments are static files,
            # so refuse the handshake (the server answers 403).
            await receive()
            await send({"type": "websocket.close", "code": 1008})

    return proxy


def create_proxy_from_env() -> ASGIApp:
    """Entry point for `uvicorn --factory`: read settings when the worker starts."""
    return create_proxy(Settings.from_env())


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to open or close yet. ASGI sends `lifespan.startup`, then, when the server stops,
    # `lifespan.shutdown`; acknowledging both lets servers run with lifespan "on".
    await receive()
    await send({"type": "lifespan.startup.complete"})
    await receive()
    await send({"type": "lifespan.shutdown.complete"})


async def _http(scope: Scope, send: Send) -> None:
    method = str(scope["method"])
    if scope["path"] == HEALTH_PATH and method in _READ_METHODS:
        body = json.dumps({"status": "ok"}, separators=(",", ":")).encode()
        content_type = b"application/json"
        status = 200
    else:
        page = _NOT_FOUND_PAGE.format(host=html.escape(_host(scope)))
        body = page.encode()
        content_type = b"text/html; charset=utf-8"
        status = 404
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    # A HEAD answer carries the GET headers, Content-Length included, but no body.
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


def _host(scope: Scope) -> str:
    """The requested host name, without a port; HTTP/1.0 requests may carry no `Host` at all."""
    for name, value in scope["headers"]:
        if name == b"host":
            # Latin-1 never fails to decode; escaping happens where the host is rendered.
            host = bytes(value).decode("latin-1").strip().lower()
            name_part, colon, port = host.rpartition(":")
            return name_part if colon and port.isdigit() else host
    return "this address"
