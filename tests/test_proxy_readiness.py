"""The proxy's probes: `/_scalemesh/livez` asks nothing, `/_scalemesh/readyz` asks what it reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from app.settings import Settings
from proxy import readiness
from proxy.asgi import Proxy, running
from proxy.readiness import LIVEZ_PATH, READYZ_PATH
from tests.support.proxy import Served, seed
from tests.support.services import redis_url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    await seed(settings)
    async with running(settings) as proxy:
        served = Served(proxy)
        yield served
        await served.http.aclose()


@pytest.mark.anyio
async def test_readyz_asks_the_database_and_storage_on_any_host(served: Served) -> None:
    alive = await served.get(LIVEZ_PATH, host="anything.example")
    ready = await served.get(READYZ_PATH, host="anything.example")
    head = await served.http.head(READYZ_PATH, headers={"host": "web.localhost:8080"})

    assert (alive.status_code, alive.json()) == (200, {"status": "alive"})
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "components": {"database": "ok", "storage": "ok"}}
    assert ready.headers["cache-control"] == "no-store"
    assert (head.status_code, head.content) == (200, b"")


@pytest.mark.anyio
@pytest.mark.redis
async def test_readyz_pings_redis_when_the_proxy_listens_to_it(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(SCALEMESH_DATABASE_URL=database_url, SCALEMESH_REDIS_URL=redis_url())
    async with running(settings) as proxy:
        served = Served(proxy)
        ready = await served.get(READYZ_PATH)
        await served.http.aclose()

    assert ready.json()["components"] == {"database": "ok", "storage": "ok", "redis": "ok"}


@pytest.mark.anyio
async def test_readyz_is_503_naming_what_is_down_only_to_an_internal_host(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readiness, "CHECK_TIMEOUT_S", 0.05)

    async def refused() -> None:
        raise ConnectionRefusedError("connection refused")

    async def hanging() -> None:
        await asyncio.sleep(10)

    proxy: Proxy = served.proxy
    proxy.readiness = readiness.Readiness(
        {**proxy.readiness.checks, "database": refused, "redis": hanging}
    )

    ready = await served.get(READYZ_PATH, host="10.0.0.7:8080")  # the kubelet: the pod's address
    alive = await served.get(LIVEZ_PATH)
    public = await served.get(READYZ_PATH, host="web.localhost:8080")

    assert public.status_code == 503
    assert public.json() == {
        "status": "degraded",
        "components": {"database": "down", "storage": "ok", "redis": "down"},
    }
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "degraded",
        "components": {
            "database": "down: ConnectionRefusedError: connection refused",
            "storage": "ok",
            "redis": "down: no answer within 0.05 s",
        },
    }
    assert alive.status_code == 200


def test_a_proxy_made_without_checks_asks_its_storage(settings: Settings) -> None:
    from app.storage.choice import storage_from_settings
    from proxy.lookup import Lookup

    proxy = Proxy(settings, storage_from_settings(settings.storage), Lookup("localhost"))

    assert list(proxy.readiness.checks) == ["storage"]
    assert asyncio.run(proxy.readiness()) == (True, {"storage": "ok"})


@pytest.mark.anyio
async def test_a_flood_of_readyz_on_a_sites_host_asks_the_checks_once_a_second(
    served: Served,
) -> None:
    asked: list[str] = []
    now = [100.0]

    async def counted() -> None:
        asked.append("database")

    proxy: Proxy = served.proxy
    proxy.readiness = readiness.Readiness({"database": counted}, clock=lambda: now[0])

    flood = [served.get(READYZ_PATH, host="web.localhost:8080") for _ in range(50)]
    answers = await asyncio.gather(*flood)
    now[0] += 0.5
    await served.get(READYZ_PATH, host="web.localhost:8080")
    assert len(asked) == 1  # 51 probes within the second: one round of checks
    now[0] += 0.5
    later = await served.get(READYZ_PATH, host="web.localhost:8080")

    assert {answer.status_code for answer in answers} == {200}
    assert later.status_code == 200
    assert len(asked) == 2  # a second on, the next probe asks again
