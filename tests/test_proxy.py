"""The proxy end to end: a shipped deployment served by hostname, on both storages.

What happens when an alias moves or goes is in `test_proxy_moves.py`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from app.storage.choice import storage_from_settings
from app.tables import Alias, Project
from builder.spec import MANIFEST, output_prefix
from proxy.asgi import HEALTH_PATH, create_proxy, running
from tests.support.proxy import (
    DEPLOYMENT,
    INDEX,
    OTHER,
    SCRIPT,
    Served,
    file_entry,
    now,
    seed,
)


@pytest.fixture
async def served(proxy_settings: Settings) -> AsyncIterator[Served]:
    await seed(proxy_settings)
    async with running(proxy_settings) as proxy:
        served = Served(proxy)
        yield served
        await served.http.aclose()


pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_deployment_is_served_by_its_label(served: Served) -> None:
    response = await served.get("/")

    assert response.status_code == 200
    assert response.content == INDEX
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["etag"]


async def test_assets_come_compressed_when_asked(served: Served) -> None:
    plain = await served.get("/assets/app-1a2b3c4d.js", **{"accept-encoding": "identity"})
    zipped = await served.get("/assets/app-1a2b3c4d.js", **{"accept-encoding": "gzip"})

    assert plain.content == SCRIPT
    assert "immutable" in plain.headers["cache-control"]
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == SCRIPT  # httpx decodes it
    assert "accept-encoding" in zipped.headers["vary"].lower()


async def test_a_custom_domain_serves_the_same_deployment(served: Served) -> None:
    response = await served.get("/", host="WWW.web.dev")

    assert response.content == INDEX


async def test_unknown_hosts_and_hostile_paths(served: Served) -> None:
    unknown = await served.get("/", host="<b>nope</b>.localhost")
    hostile = await served.get("/%2e%2e/%2e%2e/etc/passwd")
    hidden = await served.get("/.scalemesh/manifest.json")

    assert unknown.status_code == 404
    assert "No deployment here" in unknown.text
    assert "<b>" not in unknown.text
    assert hostile.status_code == 400
    assert hidden.status_code == 404


async def test_the_health_check_answers_on_any_host(served: Served) -> None:
    response = await served.get(HEALTH_PATH, host="anything.example")

    assert response.json() == {"status": "ok"}


async def test_missing_objects_are_a_502(served: Served, proxy_settings: Settings) -> None:
    storage = storage_from_settings(proxy_settings.storage)
    project_id = (await Project.select(Project._meta.primary_key).first() or {})["id"]
    await storage.delete_prefix(output_prefix(int(project_id), DEPLOYMENT))

    response = await served.get("/")

    assert response.status_code == 502
    assert "Storage unavailable" in response.text


async def test_a_deployment_still_building_says_so(settings: Settings) -> None:
    await seed(settings, state="building")
    async with running(settings) as proxy:
        served = Served(proxy)
        response = await served.get("/")
        await served.http.aclose()

    assert response.status_code == 404
    assert "still building" in response.text


def test_the_asgi_app_runs_its_lifespan_and_refuses_websockets(settings: Settings) -> None:
    app = create_proxy(settings)
    sent: list[dict[str, Any]] = []

    async def scenario() -> None:
        incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> dict[str, Any]:
            return next(incoming)

        async def send(message: dict[str, Any]) -> None:
            sent.append(dict(message))

        await app({"type": "lifespan"}, receive, send)
        await app({"type": "websocket", "path": "/", "headers": []}, receive_ws, send)

    async def receive_ws() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    asyncio.run(scenario())

    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
        "websocket.close",
    ]


async def test_bad_site_rules_are_logged_and_skipped(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    project_id = await seed(settings)
    storage = storage_from_settings(settings.storage)
    prefix = output_prefix(project_id, DEPLOYMENT)
    await storage.put(prefix + "_redirects", b"/old /new 999\n")
    manifest = json.loads(await storage.get(prefix + MANIFEST))
    manifest["files"]["_redirects"] = file_entry(b"/old /new 999\n", "text/plain", "no-cache")
    await storage.put(prefix + MANIFEST, json.dumps(manifest).encode())
    async with running(settings) as proxy:
        served = Served(proxy)
        response = await served.get("/")
        await served.http.aclose()

    assert response.content == INDEX
    assert "site rules skipped" in caplog.messages


async def test_parsed_sites_are_kept_within_a_bound(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    import proxy.asgi

    monkeypatch.setattr(proxy.asgi, "MAX_SITES", 1)
    await served.get("/")
    await Alias.update({Alias.deployment: OTHER, Alias.updated_at: now()}).where(
        Alias.hostname == "web"
    )
    served.proxy.lookup.invalidate()

    assert (await served.get("/")).content == b"<h1>Other</h1>"
    assert list(served.proxy._sites) == [OTHER]


async def test_a_request_without_a_host_is_a_404(served: Served) -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/", "raw_path": b"/", "headers": []}
    await served.app(scope, receive, send)

    assert sent[0]["status"] == 404
    assert b"this address" in sent[1]["body"]


def test_the_api_and_the_proxy_share_one_database_engine(settings: Settings) -> None:
    """As in `scalemesh dev`: both in one process, and the API can still write."""
    from app.asgi import create_app
    from tests.support.api import Client, OfflineResolver, bearer, sign_up

    app = create_app(settings, ref_resolver=OfflineResolver(), reconcile=False)
    with Client(app) as client:

        async def with_proxy_open() -> int:
            async with running(settings):
                token = await asyncio.to_thread(sign_up, client)
                response = await asyncio.to_thread(
                    client.post,
                    "/project",
                    json={"name": "web", "repo": "o/r"},
                    headers=bearer(token),
                )
                return response.status_code

        assert asyncio.run(with_proxy_open()) == 201


def test_the_server_factory_reads_its_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`scalemesh serve proxy` hands uvicorn this factory; each worker calls it on start."""
    import os

    from app.database import make_engine, migrate
    from proxy.asgi import create_proxy_from_env

    for name in [name for name in os.environ if name.startswith("SCALEMESH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SCALEMESH_DATA_DIR", str(tmp_path / "data"))
    asyncio.run(migrate(make_engine(Settings.from_env().database)))
    app = create_proxy_from_env()
    sent: list[dict[str, Any]] = []

    async def scenario() -> None:
        lifespan = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
        started, stop = asyncio.Event(), asyncio.Event()

        async def receive() -> dict[str, Any]:
            if started.is_set():
                await stop.wait()
            return next(lifespan)

        async def send(message: dict[str, Any]) -> None:
            sent.append(dict(message))
            if message["type"] == "lifespan.startup.complete":
                started.set()

        task = asyncio.create_task(app({"type": "lifespan"}, receive, send))
        await started.wait()
        scope = {"type": "http", "method": "GET", "path": HEALTH_PATH, "headers": []}
        await app(scope, receive, send)
        stop.set()
        await task

    asyncio.run(scenario())

    assert [message.get("status") for message in sent if "status" in message] == [200]
    assert sent[-1]["type"] == "lifespan.shutdown.complete"
