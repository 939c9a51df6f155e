"""The proxy's remembered answers: a repeated request gets exactly the answer it got the first time.

`Proxy` keeps each answer's encoded headers and the cache key of its body, and replays them
without routing again. These tests send a corpus covering every rule twice and compare.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

import proxy.asgi
import proxy.replays
from app.settings import Settings
from app.storage.choice import storage_from_settings
from builder.spec import MANIFEST, output_prefix
from proxy.asgi import running
from proxy.serve import ProxyRequest, ProxyResponse
from proxy.site import Site
from tests.support.proxy import DEPLOYMENT, OTHER, Served, file_entry, now, seed

pytestmark = pytest.mark.anyio

SCRIPT = b"console.log('replayed');\n" * 50
FILES = {
    "index.html": (b"<!doctype html><h1>Home</h1>", "text/html; charset=utf-8"),
    "about.html": (b"<h1>About</h1>", "text/html; charset=utf-8"),
    "docs/index.html": (b"<h1>Docs</h1>", "text/html; charset=utf-8"),
    "assets/app.js": (SCRIPT, "text/javascript; charset=utf-8"),
    "_redirects": (b"/old /about 301\n/api/* /index.html 200\n/gone /nowhere 404\n", "text/plain"),
    "_headers": (b"/*\n  X-Frame-Options: DENY\n", "text/plain"),
}
ETAG = '"' + hashlib.sha256(FILES["index.html"][0]).hexdigest()[:32] + '"'

CORPUS: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/", {}),
    ("HEAD", "/", {}),
    ("GET", "/", {"if-none-match": ETAG}),
    ("GET", "/", {"range": "bytes=2-5"}),
    ("HEAD", "/", {"range": "bytes=2-5"}),
    ("GET", "/", {"range": "bytes=9999-"}),
    ("GET", "/", {"range": "bytes=0-3", "if-range": '"stale"'}),
    ("GET", "/about", {}),
    ("GET", "/about.html?x=1", {}),
    ("GET", "/docs", {}),
    ("GET", "/docs/", {}),
    ("GET", "/old?utm=1", {}),
    ("GET", "/api/users/7", {}),
    ("GET", "/gone", {}),
    ("GET", "/settings/profile", {}),
    ("GET", "/missing.png", {}),
    ("HEAD", "/missing.png", {}),
    ("GET", "/assets/app.js", {"accept-encoding": "gzip, br"}),
    ("HEAD", "/assets/app.js", {"accept-encoding": "gzip"}),
    ("GET", "/assets/app.js", {"accept-encoding": "identity"}),
    ("GET", "/_redirects", {}),
    ("POST", "/", {}),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def ship_rich(settings: Settings, project_id: int) -> None:
    """Replace the seeded deployment's files with ones that exercise every rule."""
    storage = storage_from_settings(settings.storage)
    prefix = output_prefix(project_id, DEPLOYMENT)
    records: dict[str, Any] = {}
    for path, (body, content_type) in FILES.items():
        await storage.put(prefix + path, body)
        encodings = ("gzip",) if path.endswith(".js") else ()
        records[path] = file_entry(body, content_type, "public, max-age=0", *encodings)
    await storage.put(prefix + "assets/app.js.gz", gzip.compress(SCRIPT, mtime=0))
    await storage.put(prefix + MANIFEST, json.dumps({"version": 1, "files": records}).encode())


class Counting:
    """Counts calls of `proxy.asgi.respond`: a replayed answer is not decided again."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = proxy.asgi.respond

        async def respond(request: ProxyRequest, site: Site) -> ProxyResponse:
            self.calls += 1
            return await original(request, site)

        monkeypatch.setattr(proxy.asgi, "respond", respond)


@pytest.fixture
async def rich(settings: Settings) -> AsyncIterator[Served]:
    await ship_rich(settings, await seed(settings))
    async with running(settings) as running_proxy:
        served = Served(running_proxy)
        yield served
        await served.http.aclose()


async def send(served: Served, method: str, path: str, headers: dict[str, str]) -> Any:
    response = await served.http.request(
        method, path, headers={"host": "web.localhost", "accept-encoding": "", **headers}
    )
    # Raw bytes and every header, in order: a replay must not differ in any of them.
    return response.status_code, response.headers.multi_items(), await response.aread()


async def test_every_rule_answers_the_same_when_replayed(
    rich: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = Counting(monkeypatch)
    first = [await send(rich, *request) for request in CORPUS]
    decided = counting.calls
    second = [await send(rich, *request) for request in CORPUS]

    assert second == first
    assert decided == len(CORPUS)
    assert counting.calls == decided, "the second round was replayed, not decided again"
    statuses = {status for status, _, _ in first}
    assert statuses == {200, 206, 301, 304, 308, 404, 405, 416}
    partial = first[CORPUS.index(("GET", "/", {"range": "bytes=2-5"}))]
    assert partial[2] == FILES["index.html"][0][2:6]


async def test_a_body_gone_from_the_object_cache_is_read_again(
    rich: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = Counting(monkeypatch)
    first = await send(rich, "GET", "/about", {})
    rich.proxy.cache.clear()

    again = await send(rich, "GET", "/about", {})

    assert again == first
    assert counting.calls == 2
    assert again[2] == FILES["about.html"][0]


async def test_long_requests_are_answered_but_not_remembered(rich: Served) -> None:
    long_query = "/?q=" + "x" * proxy.replays.MAX_REPLAY_KEY

    response = await send(rich, "GET", long_query, {})

    assert response[0] == 200
    assert response[2] == FILES["index.html"][0]
    assert list(rich.proxy.replays) == []


async def test_remembered_answers_are_bounded(
    rich: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(proxy.replays, "MAX_REPLAYS", 2)
    for path in ("/", "/about", "/docs/"):
        await send(rich, "GET", path, {})

    remembered = [key[2] for key in rich.proxy.replays]

    assert remembered == [b"/about", b"/docs/"]


async def test_the_replay_follows_a_moved_alias(rich: Served) -> None:
    from app.tables import Alias

    assert (await send(rich, "GET", "/", {}))[2] == FILES["index.html"][0]
    await Alias.update({Alias.deployment: OTHER, Alias.updated_at: now()}).where(
        Alias.hostname == "web"
    )
    rich.proxy.lookup.invalidate(["web"])

    assert (await send(rich, "GET", "/", {}))[2] == b"<h1>Other</h1>"


async def test_remembered_answers_outlive_the_alias_cache_refresh(
    rich: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = Counting(monkeypatch)
    await send(rich, "GET", "/", {})
    await send(rich, "GET", "/about", {})
    lookup = rich.proxy.lookup
    now = lookup._clock()
    lookup._clock = lambda: now + lookup.ttl + 1  # every alias entry has expired

    await send(rich, "GET", "/", {})  # expired: decided again, the alias looked up again
    about = await send(rich, "GET", "/about", {})

    assert counting.calls == 3, "/about was replayed after the refresh, not decided again"
    assert about[2] == FILES["about.html"][0]


async def test_a_replay_is_only_for_the_host_it_was_decided_for(rich: Served) -> None:
    from app.tables import Alias

    web = await Alias.select(Alias.project).where(Alias.hostname == "web").first()
    assert web is not None
    await Alias.insert(
        Alias(hostname="other", project=web["project"], deployment=OTHER, updated_at=now())
    )
    await send(rich, "GET", "/", {})

    other = await rich.http.get("/", headers={"host": "other.localhost", "accept-encoding": ""})

    assert other.content == b"<h1>Other</h1>"


async def test_an_answer_uvicorn_must_frame_itself_is_replayed_through_the_app_only(
    rich: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `ProxyResponse` promises a Content-Length; should an answer ever lack one, uvicorn
    # chunks it, so `ReplayingProtocol` must not write it as it is.
    original = proxy.asgi.respond

    async def unsized(request: ProxyRequest, site: Site) -> ProxyResponse:
        response = await original(request, site)
        headers = [(name, value) for name, value in response.headers if name != "content-length"]
        return dataclasses.replace(response, headers=headers)

    monkeypatch.setattr(proxy.asgi, "respond", unsized)
    counting = Counting(monkeypatch)
    first = await send(rich, "GET", "/about", {})
    (memo_key,) = rich.proxy.replays

    wire = rich.proxy.replay_wire(memo_key, [])
    again = await send(rich, "GET", "/about", {})

    assert wire is None
    assert again == first
    assert first[2] == FILES["about.html"][0]
    assert counting.calls == 1, "the ASGI path still replays it"
