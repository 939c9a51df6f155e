"""A custom domain on two real proxy processes (`scalemesh serve proxy`, granian) sharing
PostgreSQL and Redis: it follows a promote and a rollback of its project's production label
within a second on both, and once removed neither serves it, nor allows it TLS.

The label moves through `app.deployments.publish.promote`, the code path of the API's promote
and of `scalemesh rollback`, announcing on the default alias channel, as the API does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app import database
from app.aliases import announcer
from app.deployments.publish import promote
from app.settings import Settings
from app.tables import Domain, Project
from proxy.asgi import HEALTH_PATH
from proxy.custom_domains import TLS_ALLOWED_PATH
from tests.support.api import TEST_PREVIEW_KEY, TEST_SECRET_KEY
from tests.support.ports import reserved_port
from tests.support.processes import Running, cli_env, http_client, running
from tests.support.proxy import DEPLOYMENT, INDEX, OTHER, seed
from tests.support.services import PostgresDatabases, migrate, redis_url
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(180)]

MOVE_WITHIN_S = 1.0
DOMAIN = "www.web.dev"
OTHER_INDEX = b"<h1>Other</h1>"


@pytest.fixture
def proxies(
    tmp_path: Path, postgres_databases: PostgresDatabases
) -> Iterator[tuple[Settings, list[str]]]:
    """Two proxy processes on a migrated database seeded with project `web` (production
    `DEPLOYMENT`, domain `www.web.dev`); the settings the test acts with, and their URLs."""
    url = postgres_databases.new()
    migrate(url)
    env = cli_env(tmp_path / "data") | {
        "SCALEMESH_DATABASE_URL": url,
        "SCALEMESH_REDIS_URL": redis_url(),
        "SCALEMESH_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY,
        "SCALEMESH_PREVIEW_KEY": TEST_PREVIEW_KEY,
    }
    settings = Settings.from_env(env)
    asyncio.run(seed(settings))
    ports = [reserved_port(), reserved_port()]
    with contextlib.ExitStack() as stack, http_client() as client:
        started: list[Running] = []
        for n, port in enumerate(ports):
            args = ["serve", "proxy", "--host", "127.0.0.1", "--port", str(port)]
            started.append(stack.enter_context(running(*args, env=env, logs=tmp_path / f"p{n}")))
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for process, base in zip(started, urls, strict=True):
            process.wait_until_ok(client, f"{base}{HEALTH_PATH}")
        yield settings, urls


def bodies(client: httpx.Client, urls: list[str]) -> list[tuple[int, bytes]]:
    """What each proxy answers for the domain's `/`."""
    answers = [client.get(f"{base}/", headers={"host": DOMAIN}) for base in urls]
    return [(answer.status_code, answer.content) for answer in answers]


def tls(client: httpx.Client, urls: list[str]) -> list[int]:
    return [
        client.get(f"{base}{TLS_ALLOWED_PATH}", params={"domain": DOMAIN}).status_code
        for base in urls
    ]


def within_a_second(
    client: httpx.Client,
    urls: list[str],
    change: Coroutine[Any, Any, None],
    answered: Callable[[int, bytes], bool],
    what: str,
) -> None:
    """Make the change; both proxies' answers for the domain are `answered` within a second."""
    since = time.monotonic()
    asyncio.run(change)
    wait_until(
        lambda: all(answered(*answer) for answer in bodies(client, urls)),
        within=10,
        interval=0.02,
        what=lambda: f"both proxies {what}: {bodies(client, urls)}",
    )
    took = time.monotonic() - since
    assert took < MOVE_WITHIN_S, f"both proxies {what} {took:.2f} s after the change"


def serving(content: bytes) -> Callable[[int, bytes], bool]:
    return lambda status, body: (status, body) == (200, content)


def refused(status: int, body: bytes) -> bool:
    return status == 404 and b"No deployment here" in body


def test_a_domain_follows_promote_and_rollback_and_goes_at_once_on_both_proxies(
    proxies: tuple[Settings, list[str]],
) -> None:
    settings, urls = proxies
    engine = database.make_engine(settings.database)

    async def move(deployment_id: str) -> None:
        redis = Redis.from_url(redis_url())
        try:
            await promote(engine, announcer(redis), "web", await project_id(), deployment_id)
        finally:
            await redis.aclose()

    async def remove() -> None:
        # What the domains service does on DELETE: the row goes, then its name is announced.
        redis = Redis.from_url(redis_url())
        try:
            await Domain.delete().where(Domain.name == DOMAIN)
            await announcer(redis)([DOMAIN])
        finally:
            await redis.aclose()

    with http_client() as client:
        assert bodies(client, urls) == [(200, INDEX)] * 2
        assert tls(client, urls) == [200, 200]

        promoted, rolled_back = serving(OTHER_INDEX), serving(INDEX)
        within_a_second(client, urls, move(OTHER), promoted, "serving the promoted deployment")
        within_a_second(client, urls, move(DEPLOYMENT), rolled_back, "serving the rollback")
        within_a_second(client, urls, remove(), refused, "refusing the removed domain")
        assert tls(client, urls) == [404, 404]
        # The label itself is untouched.
        label = client.get(f"{urls[0]}/", headers={"host": "web.localhost"})
        assert (label.status_code, label.content) == (200, INDEX)


async def project_id() -> int:
    row = await Project.select(Project.id).where(Project.slug == "web").first()
    assert row is not None
    return int(row["id"])
