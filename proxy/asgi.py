"""The proxy: find the deployment a `Host` names and serve its files from storage (DESIGN §6).

Glossary: the *host* is the `Host` header; its *label* names an *alias* (a *custom domain*,
any other hostname, names the label it follows); the alias points at a *deployment*; the
request *path* becomes a *key* under the deployment's storage prefix. Deployment files never
change, so every object read is cached in memory (`proxy.cache`) and a site's manifest and
rules are parsed once.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from urllib.parse import parse_qsl

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app import database
from app.local_paths import local_path
from app.preview_tokens import AUTH_PATH
from app.redis_client import redis_client
from app.settings import Settings
from app.storage import ObjectNotFound, Storage, StorageError
from app.storage.choice import storage_from_settings
from builder.spec import MANIFEST
from proxy import metrics
from proxy.cache import ObjectCache
from proxy.custom_domains import TLS_ALLOWED_PATH, tls_allowed
from proxy.custom_domains import redirect as domain_redirect
from proxy.lookup import MISSING, Lookup
from proxy.memo_keys import MemoKey, memo_key_of, request_of
from proxy.open_files import OpenFiles, raise_descriptor_limit
from proxy.protection import Gate, private, redirect
from proxy.readiness import PROBE_PATHS, Checks, Readiness, probe, read_checks
from proxy.replays import Replays, WireAnswer
from proxy.routing import BadPath, path_to_key
from proxy.sending import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    json_answer,
    not_served,
    page,
    send_answer,
    send_file,
    storage_failed,
)
from proxy.serve import respond
from proxy.site import Site
from proxy.subscriber import AliasSubscriber
from proxy.target import Redirect, Target

log = logging.getLogger(__name__)

HEALTH_PATH = "/_scalemesh/health"
MAX_SITES = 512
"""Parsed manifests and rules kept per process, by deployment id (each is small; the files are
in the cache)."""
FORWARDED_ALLOW_IPS = "FORWARDED_ALLOW_IPS"
"""The hops whose X-Forwarded-* headers count: the variable uvicorn reads for the API."""
_READ_METHODS = frozenset({"GET", "HEAD"})
_MEMO_KEY = "scalemesh.memo_key"
"""The scope extension carrying a missed request's `MemoKey` to `handle`: computed once."""


class Proxy:
    """The proxy's state for one process: storage, the alias lookup, caches."""

    def __init__(
        self, settings: Settings, storage: Storage, lookup: Lookup, checks: Checks | None = None
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.lookup = lookup
        self.readiness = Readiness(checks or read_checks(storage))
        """What `/_scalemesh/readyz` asks (`running` adds the database and Redis)."""
        self.cache = ObjectCache.from_settings(settings)
        self.gate = Gate(settings)
        self._sites: OrderedDict[str, Site] = OrderedDict()
        self.sent = metrics.Sent()
        self.files = OpenFiles(storage, self.cache)
        """Large cached files kept open for sendfile; `running` closes them."""
        self.replays = Replays(lookup, self.gate, self.cache, self.sent, self.files)
        self.registry = metrics.registry_for(self.cache, self.sent)

    def replay(self, memo_key: MemoKey, scope: Scope) -> tuple[Message, Message] | None:
        """The messages of a remembered answer to this request, or None: `handle` it then.

        Not a coroutine, and the app sends what it returns: the hot path of a busy site
        costs no coroutine of its own. It reads the memo key and the protection cookie only,
        never the scheme or the client: `ProxyApp` applies forwarded headers after a miss.
        """
        found = self.replays.find(memo_key, scope["headers"], wire=False)
        if found is None:
            return None
        return found[0].start, {"type": "http.response.body", "body": found[1]}

    def replay_wire(
        self, memo_key: MemoKey, headers: Iterable[tuple[bytes, bytes]]
    ) -> WireAnswer | None:
        """`replay` for `ReplayingProtocol` (`Replays.wire`), or None: the request then goes
        to the app as any other."""
        return self.replays.wire(memo_key, headers)

    async def handle(self, scope: Scope, send: Send, memo_key: MemoKey) -> None:
        """Answer a request `replay` could not, and remember the answer for next time."""
        method = memo_key[1]
        host = memo_key[0].decode("latin-1")
        raw_path = memo_key[2]
        if scope["path"] == HEALTH_PATH and method in _READ_METHODS:
            await send_answer(send, method, json_answer(200, {"status": "ok"}))
            return
        if scope["path"] in PROBE_PATHS and method in _READ_METHODS:
            reasons = metrics.is_metrics_host(host, self.settings.proxy_metrics_hosts)
            answer = await probe(scope["path"], self.readiness, reasons=reasons)
            await send_answer(send, method, json_answer(*answer))
            return
        if scope["path"] == TLS_ALLOWED_PATH and method in _READ_METHODS:
            await send_answer(send, method, await tls_allowed(self.lookup, memo_key[3]))
            return
        if scope["path"] == metrics.METRICS_PATH and await metrics.answers(host, method, self):
            await send_answer(send, method, metrics.response(self.registry))
            return
        send = metrics.counting(send, self.sent)
        if scope["path"] == AUTH_PATH:
            await self._hand_off(scope, send, memo_key)
            return
        try:
            key: str | None = path_to_key(raw_path)
        except BadPath:
            key = None
        peeked = self.lookup.peek(host)
        target = await self.lookup.resolve(host) if peeked is MISSING else peeked
        if isinstance(target, Redirect):
            # Any path goes along as sent: no file is read here, the other domain judges it.
            scheme = scope.get("scheme", "http")
            await send_answer(send, method, domain_redirect(scheme, raw_path, memo_key[3], target))
            return
        if key is None:
            await send_answer(send, method, page(400, "Bad request", "That path is not allowed."))
            return
        if target is None:
            shown = html.escape(host.strip().lower() or "this address")
            message = f"Nothing is deployed at <code>{shown}</code>."
            await send_answer(send, method, page(404, "No deployment here", message))
            return
        if target.protected:
            refused = self.gate.check(
                scope["headers"], scope.get("scheme", "http"), raw_path, memo_key[3], target
            )
            if refused is not None:
                await send_answer(send, method, refused)
                return
        if not target.ready:
            await send_answer(send, method, not_served(target))
            return
        try:
            site = await self._site(target)
            # Rules that read headers or cookies get them, and their answers are not replayed.
            headers = scope["headers"] if site.reads_headers else ()
            response = await respond(request_of(key, memo_key, headers), site)
            if target.protected:
                response = private(response)
        except (ObjectNotFound, StorageError) as exc:
            await storage_failed(send, method, target, exc)
            return
        opening = ""
        if not site.reads_headers:
            opening = self.replays.remember(memo_key, target, method, response)
        if response.streamed:
            await send_file(self.storage, self.cache, scope, send, target, response)
        else:
            await send_answer(send, method, response)
        if opening:
            await self.files.add(opening)

    async def _hand_off(self, scope: Scope, send: Send, memo_key: MemoKey) -> None:
        """`/_scalemesh/auth`: the API vouched for this browser; set the cookie (`Gate`)."""
        host, method = memo_key[0].decode("latin-1"), memo_key[1]
        target = await self.lookup.resolve(host)
        if target is None:
            await send_answer(
                send, method, page(404, "No deployment here", "Nothing is deployed here.")
            )
        elif isinstance(target, Redirect):
            scheme = scope.get("scheme", "http")
            await send_answer(
                send, method, domain_redirect(scheme, memo_key[2], memo_key[3], target)
            )
        elif not target.protected:
            query = dict(parse_qsl(memo_key[3].decode("latin-1")))
            await send_answer(send, method, redirect(local_path(query.get("next", "/"))))
        else:
            answer = self.gate.hand_off(scope.get("scheme", "http"), memo_key[3], target)
            await send_answer(send, method, answer)

    async def _site(self, target: Target) -> Site:
        site = self._sites.get(target.deployment_id)
        if site is not None:
            self._sites.move_to_end(target.deployment_id)
            return site
        prefix = target.prefix

        async def read(path: str) -> bytes:
            key = prefix + path
            return await self.cache.get_or_load(key, lambda: self.storage.get(key))

        sizes: dict[str, int] = {}

        async def size(path: str) -> int:
            # A deployment's files never change: each sibling is sized once (a HEAD on S3),
            # not on every download of its large file.
            found = sizes.get(path)
            if found is None:
                found = sizes[path] = await self.storage.size(prefix + path)
            return found

        manifest = json.loads(await self.storage.get(prefix + MANIFEST))
        # What the cache would not keep is not read whole: it is streamed.
        limit = self.cache.max_object_bytes
        site = await Site.load(manifest, read, size=size, inline_limit=limit)
        if site.rules.errors:
            log.warning(
                "site rules skipped",
                extra={"deployment_id": target.deployment_id, "errors": site.rules.errors},
            )
        self._sites[target.deployment_id] = site
        if len(self._sites) > MAX_SITES:
            self._sites.popitem(last=False)
        return site


class ProxyApp:
    """The proxy as an ASGI app: its lifespan opens a `Proxy` (`running`), which serves HTTP.

    A class rather than a closure so a test can hand it a `Proxy` it opened itself and still
    go through the very code a server calls.
    """

    proxy: Proxy
    """Set by the lifespan, or given; servers send no request before the startup completes."""

    def __init__(
        self, settings: Settings, proxy: Proxy | None = None, *, trusted_hops: str | None = None
    ) -> None:
        """`trusted_hops`: the addresses whose X-Forwarded-Proto and -For count (uvicorn's
        `ProxyHeadersMiddleware`, applied here, after a replay misses); None: the server
        applies them (`scalemesh dev`)."""
        self.settings = settings
        if proxy is not None:
            self.proxy = proxy
        self._handle: ASGIApp = self._handle_request
        if trusted_hops is not None:
            forwarded = ProxyHeadersMiddleware(self._handle, trusted_hops)  # type: ignore[arg-type]  # uvicorn types the app by its TypedDict scopes, ours are mappings
            self._handle = forwarded  # type: ignore[assignment]  # the same ASGI callable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            memo_key = memo_key_of(scope)
            replayed = self.proxy.replay(memo_key, scope)
            if replayed is None:
                scope[_MEMO_KEY] = memo_key  # for `_handle_request`, past the forwarding wrapper
                await self._handle(scope, receive, send)
            else:
                # A replayed answer reads neither the scheme nor the client (`Proxy.replay`),
                # so the forwarded headers are read only for requests `handle` answers:
                # their check (an IP address parsed per request) was 5% of a 150 KB answer.
                await send(replayed[0])
                await send(replayed[1])
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            # Deployments are static files: refuse a websocket handshake.
            await receive()
            await send({"type": "websocket.close", "code": 1008})

    def replay_wire(
        self, memo_key: MemoKey, headers: Iterable[tuple[bytes, bytes]]
    ) -> WireAnswer | None:
        """`Proxy.replay_wire`, for `ReplayingProtocol`, which finds the app, not the proxy."""
        return self.proxy.replay_wire(memo_key, headers)

    async def _handle_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.proxy.handle(scope, send, scope[_MEMO_KEY])

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()
        async with running(self.settings) as proxy:
            self.proxy = proxy
            await send({"type": "lifespan.startup.complete"})
            await receive()
        await send({"type": "lifespan.shutdown.complete"})


def create_proxy(settings: Settings, *, trusted_hops: str | None = None) -> ASGIApp:
    """The proxy ASGI app; its lifespan opens the database, storage and Redis it reads
    (`trusted_hops`: see `ProxyApp`)."""
    settings.check_part("proxy")
    return ProxyApp(settings, trusted_hops=trusted_hops)


def create_proxy_from_env() -> ASGIApp:
    """The factory `scalemesh serve proxy` runs: settings are read when each worker starts.

    Behind Caddy or an Ingress the scheme a visitor used arrives as `X-Forwarded-Proto`: a
    custom domain's 308 and the protection hand-off must keep it (`https`, not the `http` hop).
    It is believed only from the hops uvicorn believes for the API (`FORWARDED_ALLOW_IPS`,
    127.0.0.1 unless set), so a visitor cannot claim a scheme by sending the header itself.
    Each worker also raises its descriptor limit (`raise_descriptor_limit`).
    """
    raise_descriptor_limit()
    trusted = os.environ.get(FORWARDED_ALLOW_IPS, "127.0.0.1")
    return create_proxy(Settings.from_env(), trusted_hops=trusted)


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Proxy]:
    """Everything the proxy holds open while it serves."""
    engine = database.make_engine(settings.database)
    database.bind(engine)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(database.connection_pool(engine))
        lookup = Lookup(settings.root_domain)
        stack.push_async_callback(lookup.aclose)
        storage, redis = storage_from_settings(settings.storage), None
        if settings.redis_url is not None:
            redis = redis_client(settings.redis_url.reveal())
            stack.push_async_callback(redis.aclose)
            subscriber = AliasSubscriber(redis, lookup, channel=settings.alias_channel)
            await stack.enter_async_context(subscriber)
        proxy = Proxy(settings, storage, lookup, read_checks(storage, engine, redis))
        stack.callback(proxy.files.close)
        yield proxy
