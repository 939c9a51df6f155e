"""How the proxy's answers go out over ASGI: its own pages, headers, bodies and large files.

`send_file` sends a body `serve.respond` left unread (a range, or a file too large for the
cache) without ever holding the whole file: from memory when cached, by path when the server
can send a file itself (ASGI pathsend), else from storage a piece at a time.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from app.storage import Storage, StorageError
from proxy.cache import ObjectCache
from proxy.serve import ProxyResponse
from proxy.target import Target

# ASGI's own shapes; `Any` is allowed here because the scope is the raw edge of the protocol.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

PATHSEND = "http.response.pathsend"
"""The ASGI extension for a server sending a file by its path (granian has it, uvicorn not)."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Scale Mesh</title>
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
<h1>{title}</h1>
<p>{message}</p>
<footer>Scale Mesh</footer>
</main>
</body>
</html>
"""


async def send_file(
    storage: Storage,
    cache: ObjectCache,
    scope: Scope,
    send: Send,
    target: Target,
    response: ProxyResponse,
) -> None:
    """A GET body `respond` left unread (a range, a large file): only its bytes are read.

    From memory when the file is in the cache; a whole file on local storage is sent by the
    server itself when it can (ASGI pathsend: granian reads and writes it); else it is
    streamed from storage a piece at a time, so memory stays flat however big the file.
    """
    key = target.prefix + response.source
    cached = cache.get(key)
    if cached is not None:
        response.body = cached if response.span is None else cached[slice(*response.span)]
        await send_answer(send, "GET", response)
        return
    # The object is looked for before the status goes out (its path asked, or its first piece
    # read): a missing object is still a 502 then, not a cut-off 200.
    if response.span is None and PATHSEND in scope.get("extensions", {}):
        try:
            path = await storage.path_of(key)
        except StorageError as exc:
            await storage_failed(send, "GET", target, exc)
            return
        if path is not None:
            await send(start_message(response))
            await send({"type": PATHSEND, "path": str(path)})
            return
    # A whole file's size is its Content-Length (always set): the store is not asked for it
    # again (on S3, a HEAD before every download).
    start, stop = response.span or (0, int(response.header("content-length") or ""))
    chunks = storage.stream(key, start, stop)
    async with contextlib.aclosing(chunks):
        try:
            first = await anext(chunks, b"")
        except StorageError as exc:
            await storage_failed(send, "GET", target, exc)
            return
        await send(start_message(response))
        await send({"type": "http.response.body", "body": first, "more_body": True})
        # A storage error past this point escapes: the server cuts the connection, and
        # the client sees a body shorter than its Content-Length.
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def page(status: int, title: str, message_html: str) -> ProxyResponse:
    body = PAGE.format(title=html.escape(title), message=message_html).encode()
    return ProxyResponse(
        status=status,
        headers=[
            ("content-type", "text/html; charset=utf-8"),
            ("content-length", str(len(body))),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
        ],
        body=body,
    )


def not_served(target: Target) -> ProxyResponse:
    """What a deployment that serves no files answers: 410 Gone once pruned (it existed and
    will not come back: links and crawlers may drop it), else 404 while it is not ready."""
    if target.pruned:
        return page(
            410,
            "Deployment removed",
            "This deployment was removed (its pull request closed, or it expired). "
            "A new push deploys it again.",
        )
    state = "still building" if target.state in ("queued", "building") else target.state
    return page(404, "Not ready yet", f"This deployment is {html.escape(state)}.")


def json_answer(status: int, value: object) -> ProxyResponse:
    body = json.dumps(value, separators=(",", ":")).encode()
    return ProxyResponse(
        status=status,
        headers=[
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
        ],
        body=body,
    )


async def storage_failed(send: Send, method: str, target: Target, exc: StorageError) -> None:
    log.error(
        "storage read failed",
        extra={"deployment_id": target.deployment_id, "error": str(exc)},
    )
    await send_answer(send, method, page(502, "Storage unavailable", "Try again shortly."))


def start_message(response: ProxyResponse) -> Message:
    return {
        "type": "http.response.start",
        "status": response.status,
        "headers": [(name.encode(), value.encode()) for name, value in response.headers],
    }


async def send_answer(send: Send, method: str, response: ProxyResponse) -> None:
    await send(start_message(response))
    # A HEAD answer carries the GET headers, Content-Length included, but no body.
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else response.body})
