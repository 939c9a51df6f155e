"""The proxy: find the deployment a `Host` names and serve its files from storage (DESIGN §6).

Glossary: the *host* is the `Host` header; its *label* (or, for a custom domain, the whole
hostname) names an *alias*; the alias points at a *deployment*; the request *path* becomes a
*key* under the deployment's storage prefix. Deployment files never change, so every object
read is cached in memory (`proxy.cache`) and a site's manifest and rules are parsed once.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from redis.asyncio import Redis

from app import database
from app.settings import Settings
from app.storage import ObjectNotFound, Storage, StorageError, storage_from_settings
from builder.spec import MANIFEST
from proxy.cache import ObjectCache
from proxy.lookup import AliasSubscriber, Lookup, Target
from proxy.routing import BadPath, path_to_key
from proxy.serve import ProxyRequest, ProxyResponse, Site, respond

# ASGI's own shapes; `Any` is allowed here because the scope is the raw edge of the protocol.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)

HEALTH_PATH = "/_scalemesh/health"
MAX_SITES = 512
"""Parsed manifests and rules kept per process (each is small; the files are in the cache)."""
_READ_METHODS = frozenset({"GET", "HEAD"})

_PAGE = """<!doctype html>
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


class Proxy:
    """The proxy's state for one process: storage, the alias lookup, caches."""

    def __init__(self, settings: Settings, storage: Storage, lookup: Lookup) -> None:
        self.settings = settings
        self.storage = storage
        self.lookup = lookup
        self.cache = ObjectCache.from_settings(settings)
        self._sites: OrderedDict[str, Site] = OrderedDict()

    async def handle(self, scope: Scope, send: Send) -> None:
        method = str(scope["method"])
        host = _host(scope)
        if scope["path"] == HEALTH_PATH and method in _READ_METHODS:
            await _send(send, method, _json(200, {"status": "ok"}))
            return
        try:
            key = path_to_key(scope.get("raw_path") or scope["path"].encode())
        except BadPath:
            await _send(send, method, _page(400, "Bad request", "That path is not allowed."))
            return
        target = await self.lookup.resolve(host)
        if target is None:
            message = f"Nothing is deployed at <code>{html.escape(host or 'this address')}</code>."
            await _send(send, method, _page(404, "No deployment here", message))
            return
        if not target.ready:
            state = "still building" if target.state in ("queued", "building") else target.state
            message = f"This deployment is {html.escape(state)}."
            await _send(send, method, _page(404, "Not ready yet", message))
            return
        try:
            site = await self._site(target)
            response = await respond(_request(scope, method, key), site)
        except (ObjectNotFound, StorageError) as exc:
            log.error(
                "storage read failed",
                extra={"deployment_id": target.deployment_id, "error": str(exc)},
            )
            await _send(send, method, _page(502, "Storage unavailable", "Try again shortly."))
            return
        await _send(send, method, response)

    async def _site(self, target: Target) -> Site:
        site = self._sites.get(target.deployment_id)
        if site is not None:
            self._sites.move_to_end(target.deployment_id)
            return site
        prefix = target.prefix

        async def read(path: str) -> bytes:
            key = prefix + path
            return await self.cache.get_or_load(key, lambda: self.storage.get(key))

        manifest = json.loads(await self.storage.get(prefix + MANIFEST))
        site = await Site.load(manifest, read)
        if site.rules.errors:
            log.warning(
                "site rules skipped",
                extra={"deployment_id": target.deployment_id, "errors": site.rules.errors},
            )
        self._sites[target.deployment_id] = site
        if len(self._sites) > MAX_SITES:
            self._sites.popitem(last=False)
        return site


def create_proxy(settings: Settings) -> ASGIApp:
    """The proxy ASGI app; its lifespan opens the database, storage and Redis it reads."""
    state: dict[str, Proxy] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(settings, state, receive, send)
        elif scope["type"] == "http":
            await state["proxy"].handle(scope, send)
        else:
            # Deployments are static files: refuse a websocket handshake.
            await receive()
            await send({"type": "websocket.close", "code": 1008})

    return app


def create_proxy_from_env() -> ASGIApp:
    """Entry point for `uvicorn --factory`: read settings when the worker starts."""
    return create_proxy(Settings.from_env())


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Proxy]:
    """Everything the proxy holds open while it serves."""
    engine = database.make_engine(settings.database)
    database.bind(engine)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(database.connection_pool(engine))
        lookup = Lookup(settings.root_domain)
        if settings.redis_url is not None:
            redis = Redis.from_url(settings.redis_url.reveal())
            stack.push_async_callback(redis.aclose)
            subscriber = AliasSubscriber(redis, lookup)
            await stack.enter_async_context(subscriber)
        yield Proxy(settings, storage_from_settings(settings.storage), lookup)


async def _lifespan(
    settings: Settings, state: dict[str, Proxy], receive: Receive, send: Send
) -> None:
    await receive()
    async with running(settings) as proxy:
        state["proxy"] = proxy
        await send({"type": "lifespan.startup.complete"})
        await receive()
    await send({"type": "lifespan.shutdown.complete"})


def _request(scope: Scope, method: str, key: str) -> ProxyRequest:
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    return ProxyRequest(
        method=method,
        key=key,
        query=bytes(scope.get("query_string", b"")).decode("latin-1"),
        accept_encoding=headers.get("accept-encoding", ""),
        if_none_match=headers.get("if-none-match", ""),
        range=headers.get("range", ""),
        if_range=headers.get("if-range", ""),
    )


def _host(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            # Latin-1 never fails to decode; escaping happens where the host is rendered.
            return bytes(value).decode("latin-1").strip().lower()
    return ""


def _page(status: int, title: str, message_html: str) -> ProxyResponse:
    body = _PAGE.format(title=html.escape(title), message=message_html).encode()
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


def _json(status: int, value: object) -> ProxyResponse:
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


async def _send(send: Send, method: str, response: ProxyResponse) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [(name.encode(), value.encode()) for name, value in response.headers],
        }
    )
    # A HEAD answer carries the GET headers, Content-Length included, but no body.
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else response.body})
