"""Hostname → deployment lookup: labels, custom domains, caching, and invalidation across replicas.

Each `Lookup` here stands for one proxy replica; two of them on one database must both serve a
moved alias within a second, through the version check (no Redis) or Redis pub/sub.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from app import database
from app.aliases import ALIAS_CHANNEL, publish_alias_change
from app.deployments import point_alias, publish
from app.hostnames import branch_label, deployment_label
from app.settings import Settings
from app.tables import Deployment, DeploymentState, Project, Target, User
from builder.spec import output_prefix
from proxy import lookup as lookup_module
from proxy.lookup import MISSING, AliasSubscriber, Lookup, _hostnames
from tests.support.services import redis_url

pytestmark = pytest.mark.anyio

ROOT = "example.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    engine: database.AnyEngine
    project_id: int
    queries: list[str]

    async def deployment(
        self, state: DeploymentState = DeploymentState.READY, **values: Any
    ) -> str:
        deployment_id = str(uuid.uuid4())
        await Deployment.insert(
            Deployment(id=deployment_id, project=self.project_id, state=state, **values)
        )
        return deployment_id


@pytest.fixture
async def world(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> World:
    """A bound database with one user and one project; counts the queries sent to it."""
    engine = database.make_engine(settings.database)
    database.bind(engine)
    queries: list[str] = []
    # The engine classes use __slots__, so the count wraps the class's method.
    real = type(engine).run_querystring

    async def counting(self: Any, querystring: Any, in_pool: bool = True) -> Any:
        queries.append(str(querystring))
        return await real(self, querystring, in_pool=in_pool)

    monkeypatch.setattr(type(engine), "run_querystring", counting)
    user = (await User.insert(User(email="ada@example.com", password_hash="x")))[0]["id"]
    project = await Project.insert(
        Project(slug="shop", name="Shop", owner=user, git_url="https://example.com/shop.git")
    )
    return World(engine, int(project[0]["id"]), queries)


async def test_a_label_under_the_root_domain(world: World) -> None:
    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    lookup = Lookup(ROOT)
    target = await lookup.resolve("Shop.Example.Test:8080")
    assert target is not None
    assert target.deployment_id == deployment_id
    assert target.project_id == world.project_id
    assert target.state is DeploymentState.READY
    assert target.ready
    assert target.prefix == output_prefix(world.project_id, deployment_id)


async def test_a_custom_domain_is_its_full_hostname(world: World) -> None:
    deployment_id = await world.deployment()
    await point_alias("www.shop.io", world.project_id, deployment_id)
    lookup = Lookup(ROOT)
    target = await lookup.resolve("www.shop.io.")
    assert target is not None
    assert target.deployment_id == deployment_id
    # Under the root domain but two labels deep: only a full-hostname alias can match.
    assert await lookup.resolve("www.shop.example.test") is None


async def test_unknown_and_malformed_hosts(world: World) -> None:
    lookup = Lookup(ROOT)
    assert await lookup.resolve("nothing.example.test") is None
    before = len(world.queries)
    for host in ("", "bad host", "a..b", "x" * 64 + ".example.test", "[::1]:8080", "é.test"):
        assert await lookup.resolve(host) is None
    assert len(world.queries) == before  # refused without asking the database


async def test_a_deployment_not_ready_yet_comes_back_with_its_state(world: World) -> None:
    deployment_id = await world.deployment(DeploymentState.BUILDING)
    await point_alias("shop-git-main", world.project_id, deployment_id)
    clock = FakeClock()
    lookup = Lookup(ROOT, poll_interval=None, clock=clock)
    target = await lookup.resolve("shop-git-main.example.test")
    assert target is not None
    assert target.state is DeploymentState.BUILDING
    assert not target.ready
    # A build finishes without moving its alias, so a pending answer is kept only briefly.
    await Deployment.update({Deployment.state: DeploymentState.READY}).where(
        Deployment.id == deployment_id
    )
    clock.now += 0.5
    pending = await lookup.resolve("shop-git-main.example.test")
    assert pending is not None
    assert pending.state is DeploymentState.BUILDING
    clock.now += 1
    ready = await lookup.resolve("shop-git-main.example.test")
    assert ready is not None
    assert ready.state is DeploymentState.READY


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_answers_are_cached_for_the_ttl(world: World) -> None:
    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    clock = FakeClock()
    lookup = Lookup(ROOT, ttl=30, poll_interval=None, clock=clock)
    assert await lookup.resolve("shop.example.test") is not None
    assert await lookup.resolve("nope.example.test") is None
    before = len(world.queries)
    clock.now += 29
    assert await lookup.resolve("shop.example.test") is not None
    assert await lookup.resolve("nope.example.test") is None  # misses are cached too
    assert len(world.queries) == before
    clock.now += 2
    assert await lookup.resolve("shop.example.test") is not None
    assert len(world.queries) == before + 1
    stats = lookup.stats
    assert (stats.hits, stats.misses, stats.queries) == (2, 3, 3)


async def test_peek_answers_only_from_the_cache(world: World) -> None:
    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    clock = FakeClock()
    lookup = Lookup(ROOT, ttl=30, poll_interval=0.5, clock=clock)

    assert lookup.peek("shop.example.test") is MISSING  # the first version check is due
    target = await lookup.resolve("shop.example.test")
    assert target is not None
    assert lookup.peek("shop.example.test") == target
    assert lookup.peek("SHOP.example.test:443") == target  # the same alias
    assert lookup.peek("other.example.test") is MISSING  # never resolved
    assert lookup.peek("bad host") is None  # never an alias: no need to ask
    queries = len(world.queries)
    clock.now += 0.6
    assert lookup.peek("shop.example.test") is MISSING  # a version check is due: resolve runs it
    await lookup.resolve("shop.example.test")
    clock.now += 30
    assert lookup.peek("shop.example.test") is MISSING  # expired
    assert len(world.queries) == queries + 1, "peeking never queries"


async def test_a_refreshed_entry_keeps_its_object_while_the_answer_is_the_same(
    world: World,
) -> None:
    """The proxy ties remembered answers to the `Target` object: a refresh must not orphan them."""
    first = await world.deployment()
    await point_alias("shop", world.project_id, first)
    clock = FakeClock()
    lookup = Lookup(ROOT, ttl=30, poll_interval=None, clock=clock)
    target = await lookup.resolve("shop.example.test")

    clock.now += 31
    refreshed = await lookup.resolve("shop.example.test")
    second = await world.deployment()
    await point_alias("shop", world.project_id, second)
    clock.now += 31
    moved = await lookup.resolve("shop.example.test")

    assert refreshed is target
    assert moved is not None
    assert moved.deployment_id == second
    assert lookup.peek("shop.example.test") is moved


async def test_parsed_host_names_are_bounded(world: World) -> None:
    lookup = Lookup(ROOT, poll_interval=None, max_entries=2)
    for host in ("a.example.test", "b.example.test", "c.example.test"):
        await lookup.resolve(host)

    assert list(lookup._names) == ["c.example.test"]


async def test_the_version_check_is_rate_limited(world: World) -> None:
    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    clock = FakeClock()
    lookup = Lookup(ROOT, poll_interval=0.5, clock=clock)
    await lookup.resolve("shop.example.test")
    before = len(world.queries)
    for _ in range(20):
        await lookup.resolve("shop.example.test")
    assert len(world.queries) == before
    clock.now += 0.6
    await lookup.resolve("shop.example.test")
    assert len(world.queries) == before + 1  # the version, not the alias
    assert lookup.stats.version_checks == 2


async def test_concurrent_misses_share_one_query(world: World) -> None:
    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    lookup = Lookup(ROOT, poll_interval=None)
    results = await asyncio.gather(*(lookup.resolve("shop.example.test") for _ in range(20)))
    assert {result.deployment_id for result in results if result is not None} == {deployment_id}
    assert lookup.stats.queries == 1


async def test_the_cache_holds_at_most_max_entries(world: World) -> None:
    lookup = Lookup(ROOT, poll_interval=None, max_entries=3)
    for name in "abcde":
        await lookup.resolve(f"{name}.example.test")
    assert lookup.stats.entries == 3


async def eventually_both(
    lookups: list[Lookup], host: str, deployment_id: str, within: float = 1.0
) -> float:
    """Seconds until every lookup serves `deployment_id` for `host`; fails after `within`."""
    started = time.monotonic()
    while True:
        targets = [await lookup.resolve(host) for lookup in lookups]
        if all(target is not None and target.deployment_id == deployment_id for target in targets):
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"still serving {targets}"
        await asyncio.sleep(0.02)


async def test_a_promote_reaches_two_replicas_within_a_second_by_version(world: World) -> None:
    old, new = await world.deployment(), await world.deployment()
    await point_alias("shop", world.project_id, old)
    replicas = [Lookup(ROOT, ttl=30), Lookup(ROOT, ttl=30)]
    for replica in replicas:
        target = await replica.resolve("shop.example.test")
        assert target is not None
        assert target.deployment_id == old
    await point_alias("shop", world.project_id, new)
    await eventually_both(replicas, "shop.example.test", new)
    assert all(replica.stats.flushes >= 1 for replica in replicas)


async def test_a_removed_alias_is_noticed_by_version(world: World) -> None:
    from app.tables import Alias

    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    await point_alias("shop-git-x", world.project_id, deployment_id)
    clock = FakeClock()
    lookup = Lookup(ROOT, poll_interval=0.5, clock=clock)
    assert await lookup.resolve("shop-git-x.example.test") is not None
    await Alias.delete().where(Alias.hostname == "shop-git-x")
    clock.now += 0.6
    assert await lookup.resolve("shop-git-x.example.test") is None


async def test_publish_announces_the_hostnames_it_moved(world: World) -> None:
    deployment_id = await world.deployment(
        DeploymentState.READY, branch="main", target=Target.PRODUCTION
    )
    heard: list[list[str]] = []

    async def announce(names: list[str]) -> None:
        # Announced after the commit: a proxy reading now must already see the new alias.
        heard.append(names)
        target = await Lookup(ROOT, poll_interval=None).resolve("shop.example.test")
        assert target is not None
        assert target.deployment_id == deployment_id

    await publish(world.engine, deployment_id, announce=announce)
    assert heard == [["shop-" + deployment_id.replace("-", "")[:9], "shop-git-main", "shop"]]
    assert heard[0][0] == deployment_label("shop", deployment_id)
    assert heard[0][1] == branch_label("shop", "main")
    await publish(world.engine, str(uuid.uuid4()), announce=announce)  # no such deployment
    assert len(heard) == 1


def test_invalidation_messages() -> None:
    assert _hostnames(b"shop\nshop-git-main") == ["shop", "shop-git-main"]
    assert _hostnames("shop\n") == ["shop"]
    assert _hostnames(b"*") is None


# --- Redis --------------------------------------------------------------------------------


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url())
    yield client
    await client.aclose()


@pytest.mark.redis
async def test_a_promote_reaches_two_replicas_within_a_second_by_redis(
    world: World, redis_client: Redis
) -> None:
    old, new = await world.deployment(), await world.deployment()
    await point_alias("shop", world.project_id, old)
    # No version polling: only the pushes can make the replicas notice.
    replicas = [Lookup(ROOT, ttl=30, poll_interval=None) for _ in range(2)]
    clients = [Redis.from_url(redis_url()) for _ in replicas]
    subscribers = [AliasSubscriber(c, r) for c, r in zip(clients, replicas, strict=True)]
    try:
        for subscriber in subscribers:
            await subscriber.start()
            assert subscriber.subscribed
        for replica in replicas:
            target = await replica.resolve("shop.example.test")
            assert target is not None
            assert target.deployment_id == old
        before = [replica.stats.queries for replica in replicas]
        await point_alias("shop", world.project_id, new)
        await publish_alias_change(redis_client, ["shop"])
        await eventually_both(replicas, "shop.example.test", new)
        assert [replica.stats.queries for replica in replicas] == [n + 1 for n in before]
        # Everything at once: "*".
        await point_alias("shop", world.project_id, old)
        await publish_alias_change(redis_client)
        await eventually_both(replicas, "shop.example.test", old)
    finally:
        for subscriber in subscribers:
            await subscriber.aclose()
        for client in clients:
            await client.aclose()
    assert not subscribers[0].subscribed


@pytest.mark.redis
async def test_publish_with_the_redis_announcer(world: World, redis_client: Redis) -> None:
    deployment_id = await world.deployment(DeploymentState.READY, target=Target.PRODUCTION)
    lookup = Lookup(ROOT, poll_interval=None)
    assert await lookup.resolve("shop.example.test") is None  # cached: no production yet
    async with AliasSubscriber(redis_client, lookup):
        await publish(
            world.engine,
            deployment_id,
            announce=lambda names: publish_alias_change(redis_client, names),
        )
        await eventually_both([lookup], "shop.example.test", deployment_id)


@pytest.mark.redis
async def test_the_subscriber_reconnects_and_polls_meanwhile(world: World) -> None:
    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    lookup = Lookup(ROOT, poll_interval=0.5)
    client = Redis.from_url(redis_url())
    subscriber = AliasSubscriber(client, lookup, max_backoff=0.2)
    try:
        await subscriber.start()
        assert subscriber.subscribed
        checks = lookup.stats.version_checks
        await lookup.resolve("shop.example.test")
        assert lookup.stats.version_checks == checks  # pushes live: no polling
        # Kill the subscriber's connection from the server side.
        admin = Redis.from_url(redis_url())
        try:
            await admin.client_kill_filter(_type="pubsub")
        finally:
            await admin.aclose()
        await wait_for(lambda: not subscriber.subscribed)
        await wait_for(lambda: subscriber.subscribed)
    finally:
        await subscriber.aclose()
        await client.aclose()


async def wait_for(condition: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_publishing_is_best_effort() -> None:
    # Nothing listens on port 1: the announcement fails, quietly.
    client = Redis.from_url("redis://127.0.0.1:1/0")
    try:
        await publish_alias_change(client, ["shop"])
        await publish_alias_change(client, [])
    finally:
        await client.aclose()


async def test_a_subscriber_that_cannot_connect_leaves_polling_on(world: World) -> None:
    lookup = Lookup(ROOT)
    client = Redis.from_url("redis://127.0.0.1:1/0")
    subscriber = AliasSubscriber(client, lookup, max_backoff=0.05)
    try:
        await subscriber.start(wait=0.2)
        assert not subscriber.subscribed
        await lookup.resolve("shop.example.test")
        assert lookup.stats.version_checks == 1
    finally:
        await subscriber.aclose()
        await client.aclose()
    assert ALIAS_CHANNEL == "scalemesh:aliases"


async def test_an_answer_read_before_an_invalidation_is_not_cached(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    lookup = Lookup(ROOT, poll_interval=None)
    reading, release = asyncio.Event(), asyncio.Event()
    real = lookup_module._query

    async def slow_query(name: str) -> Any:
        answer = await real(name)
        reading.set()
        await release.wait()
        return answer

    monkeypatch.setattr(lookup_module, "_query", slow_query)
    pending = asyncio.create_task(lookup.resolve("shop.example.test"))
    await reading.wait()
    lookup.invalidate(["shop"])  # the alias moved while the query was out
    release.set()
    assert await pending is not None  # this request gets what was read...
    assert lookup.stats.entries == 0  # ...but the next one asks again


async def test_concurrent_version_checks_run_once(world: World) -> None:
    lookup = Lookup(ROOT)
    await asyncio.gather(*(lookup.resolve(f"h{n}.example.test") for n in range(5)))
    assert lookup.stats.version_checks == 1


async def test_a_failed_query_reaches_the_caller(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(name: str) -> Any:
        raise OSError("database unreachable")

    monkeypatch.setattr(lookup_module, "_query", broken)
    lookup = Lookup(ROOT, poll_interval=None)
    with pytest.raises(OSError, match="unreachable"):
        await lookup.resolve("shop.example.test")
    assert lookup.stats.entries == 0


async def test_subscriber_lifecycle_without_redis() -> None:
    lookup = Lookup(ROOT, poll_interval=None)
    client = Redis.from_url("redis://127.0.0.1:1/0")
    subscriber = AliasSubscriber(client, lookup, max_backoff=0.05)
    try:
        await subscriber.aclose()  # never started: nothing to stop
        await subscriber.start(wait=None)
        await subscriber.start(wait=None)  # already running: one task
        # Messages other than a subscription or an announcement change nothing.
        assert not subscriber._handle({"type": "pong", "data": b""})
        assert subscriber._handle({"type": "subscribe", "data": 1})
        assert subscriber.subscribed
        assert not subscriber._handle({"type": "message", "data": b"shop"})
    finally:
        await subscriber.aclose()
        await client.aclose()
