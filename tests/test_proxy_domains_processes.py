"""A custom domain on two real proxy processes (`scalemesh serve proxy`) sharing
PostgreSQL and Redis, from its claim to its removal, each step seen by both within a second:
served once DNS proves it (nothing, and no certificate, while pending), following a promote and
a rollback of its project's production label, and gone from both once removed.

The domain goes through `app.domains.service.DomainService` (the API's code path; its DNS is
the in-process test server) and the label through `app.deployments.pinning.promote` (the API's
promote and `scalemesh rollback`), both announcing on the default alias channel as the API does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from app import database
from app.aliases import announcer
from app.deployments.pinning import promote
from app.domains.dns import DnsPythonLookup
from app.domains.service import DomainService, NewDomain
from app.projects.access import Access, Actor
from app.settings import Settings
from app.tables import Project
from proxy.asgi import HEALTH_PATH
from proxy.custom_domains import TLS_ALLOWED_PATH
from tests.support.api import TEST_PREVIEW_KEY, TEST_SECRET_KEY
from tests.support.dns_server import DnsServer, dns_server
from tests.support.ports import reserved_port
from tests.support.processes import Running, cli_env, http_client, running
from tests.support.proxy import DEPLOYMENT, INDEX, OTHER, seed
from tests.support.services import PostgresDatabases, migrate, redis_url
from tests.support.waiting import wait_until

__all__ = ["dns_server"]

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(180)]

WITHIN_S = 1.0
DOMAIN = "docs.example.com"
OTHER_INDEX = b"<h1>Other</h1>"

Answer = tuple[int, bytes]


@pytest.fixture
def proxies(
    tmp_path: Path, postgres_databases: PostgresDatabases, dns_server: DnsServer
) -> Iterator[tuple[Settings, list[str]]]:
    """Two proxy processes on a migrated database seeded with project `web` (production:
    `DEPLOYMENT`); the settings the test acts with, and the proxies' URLs."""
    url = postgres_databases.new()
    migrate(url)
    env = cli_env(tmp_path / "data") | {
        "SCALEMESH_DATABASE_URL": url,
        "SCALEMESH_REDIS_URL": redis_url(),
        "SCALEMESH_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY,
        "SCALEMESH_PREVIEW_KEY": TEST_PREVIEW_KEY,
        "SCALEMESH_DNS_RESOLVERS": dns_server.resolvers,
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


class Proxies:
    """What both proxies answer for the domain, and the changes the test makes."""

    def __init__(self, settings: Settings, urls: list[str], client: httpx.Client) -> None:
        self.settings, self.urls, self.client = settings, urls, client
        self.engine = database.make_engine(settings.database)

    def answers(self) -> list[Answer]:
        got = [self.client.get(f"{base}/", headers={"host": DOMAIN}) for base in self.urls]
        return [(answer.status_code, answer.content) for answer in got]

    def tls(self) -> list[int]:
        asked = [
            self.client.get(f"{base}{TLS_ALLOWED_PATH}", params={"domain": DOMAIN})
            for base in self.urls
        ]
        return [answer.status_code for answer in asked]

    def within_a_second(
        self,
        change: Callable[[DomainService], Awaitable[object]],
        answered: Callable[[Answer], bool],
        what: str,
    ) -> None:
        """Make the change; both proxies' answers are `answered` within a second of it (of
        when it returned, as the API would have answered)."""
        asyncio.run(self._run(change))
        since = time.monotonic()
        wait_until(
            lambda: all(answered(answer) for answer in self.answers()),
            within=10,
            interval=0.02,
            what=lambda: f"both proxies {what}: {self.answers()}",
        )
        took = time.monotonic() - since
        assert took < WITHIN_S, f"both proxies {what} {took:.2f} s after the change"

    async def _run(self, change: Callable[[DomainService], Awaitable[object]]) -> None:
        redis = Redis.from_url(redis_url())
        try:
            lookup = DnsPythonLookup(self.settings.domains.dns_resolvers)
            announce = announcer(redis)
            await change(DomainService(self.settings, self.engine, Access(), lookup, announce))
        finally:
            await redis.aclose()


def serving(content: bytes) -> Callable[[Answer], bool]:
    return lambda answer: answer == (200, content)


def refused(answer: Answer) -> bool:
    return answer[0] == 404 and b"No deployment here" in answer[1]


async def owner() -> tuple[Actor, int]:
    row = await Project.select(Project.id, Project.owner).where(Project.slug == "web").first()
    assert row is not None
    return Actor(int(row["owner"])), int(row["id"])


def test_a_domain_from_its_claim_to_its_removal_on_two_proxies(
    proxies: tuple[Settings, list[str]], dns_server: DnsServer
) -> None:
    settings, urls = proxies
    with http_client() as client:
        both = Proxies(settings, urls, client)

        async def add(service: DomainService) -> None:
            actor, _ = await owner()
            view = await service.add(actor, "web", NewDomain(DOMAIN))
            [txt] = [item for item in view.instructions if item.type == "TXT"]
            dns_server.set(txt.name, "TXT", txt.value)  # the owner proves it

        async def verify(service: DomainService) -> None:
            actor, _ = await owner()
            assert (await service.verify(actor, "web", DOMAIN)).state == "verified"

        def promoting(deployment_id: str) -> Callable[[DomainService], Awaitable[None]]:
            async def move(service: DomainService) -> None:
                _, project_id = await owner()
                await promote(both.engine, service.announce, "web", project_id, deployment_id)

            return move

        async def remove(service: DomainService) -> None:
            actor, _ = await owner()
            await service.remove(actor, "web", DOMAIN)

        both.within_a_second(add, refused, "refusing the pending domain")
        assert both.tls() == [404, 404]

        both.within_a_second(verify, serving(INDEX), "serving the verified domain")
        assert both.tls() == [200, 200]

        both.within_a_second(promoting(OTHER), serving(OTHER_INDEX), "following the promote")
        both.within_a_second(promoting(DEPLOYMENT), serving(INDEX), "following the rollback")

        both.within_a_second(remove, refused, "refusing the removed domain")
        assert both.tls() == [404, 404]
        label = client.get(f"{urls[0]}/", headers={"host": "web.localhost"})
        assert (label.status_code, label.content) == (200, INDEX), "the label is untouched"
