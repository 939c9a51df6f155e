"""A moved alias reaches every proxy replica: by the version check, or by Redis pub/sub.

Each `Lookup` here stands for one proxy replica; two of them on one database must both serve a
moved alias, through the version check (no Redis; due every half second) or the announcement
the API publishes on Redis. Each test announces on a channel of its own (`alias_channel`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.aliases import ALIAS_CHANNEL, publish_alias_change
from app.deployments.lifecycle import DeploymentState, Target
from app.deployments.publish import point_alias, publish
from app.hostnames import branch_label, deployment_label
from app.tables import Alias
from proxy.lookup import Lookup
from proxy.subscriber import AliasSubscriber, _hostnames
from tests.support.lookup import ROOT, FakeClock, World
from tests.support.services import redis_url, unique_name
from tests.support.waiting import eventually, eventually_async

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def serving(lookups: list[Lookup], host: str) -> list[str | None]:
    targets = [await lookup.resolve(host) for lookup in lookups]
    return [None if target is None else target.deployment_id for target in targets]


async def all_serve(lookups: list[Lookup], host: str, deployment_id: str) -> None:
    """Wait until every lookup serves `deployment_id` for `host`."""

    async def served() -> bool:
        return await serving(lookups, host) == [deployment_id] * len(lookups)

    await eventually_async(served, what=f"every replica serving {deployment_id}")


# --- without Redis: the version check -----------------------------------------------------


async def test_a_promote_reaches_two_replicas_within_a_second_by_version(world: World) -> None:
    old, new = await world.deployment(), await world.deployment()
    await point_alias("shop", world.project_id, old)
    clock = FakeClock()
    replicas = [Lookup(ROOT, ttl=30, clock=clock), Lookup(ROOT, ttl=30, clock=clock)]
    assert await serving(replicas, "shop.example.test") == [old, old]

    await point_alias("shop", world.project_id, new)
    # Cached, and the version was just checked: the next check is due a poll interval later.
    assert await serving(replicas, "shop.example.test") == [old, old]
    poll = replicas[0].poll_interval
    assert poll is not None
    assert 0 < poll < 1
    clock.now += poll

    assert await serving(replicas, "shop.example.test") == [new, new]
    assert all(replica.stats.flushes >= 1 for replica in replicas)


async def test_a_removed_alias_is_noticed_by_version(world: World) -> None:
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
async def test_a_promote_reaches_two_replicas_by_redis_alone(
    world: World, redis_client: Redis, alias_channel: str
) -> None:
    old, new = await world.deployment(), await world.deployment()
    await point_alias("shop", world.project_id, old)
    # No version polling and a long TTL: only the pushes can make the replicas notice.
    replicas = [Lookup(ROOT, ttl=30, poll_interval=None) for _ in range(2)]
    clients = [Redis.from_url(redis_url()) for _ in replicas]
    subscribers = [
        AliasSubscriber(c, r, channel=alias_channel) for c, r in zip(clients, replicas, strict=True)
    ]
    try:
        for subscriber in subscribers:
            await subscriber.start()
            assert subscriber.subscribed
        assert await serving(replicas, "shop.example.test") == [old, old]
        before = [replica.stats.queries for replica in replicas]
        await point_alias("shop", world.project_id, new)
        await publish_alias_change(redis_client, ["shop"], channel=alias_channel)
        await all_serve(replicas, "shop.example.test", new)
        assert [replica.stats.queries for replica in replicas] == [n + 1 for n in before]
        # Everything at once: "*".
        await point_alias("shop", world.project_id, old)
        await publish_alias_change(redis_client, channel=alias_channel)
        await all_serve(replicas, "shop.example.test", old)
    finally:
        for subscriber in subscribers:
            await subscriber.aclose()
        for client in clients:
            await client.aclose()
    assert not subscribers[0].subscribed


@pytest.mark.redis
async def test_an_announcement_on_another_channel_is_not_heard(
    world: World, redis_client: Redis, alias_channel: str
) -> None:
    old, new = await world.deployment(), await world.deployment()
    await point_alias("shop", world.project_id, old)
    lookup = Lookup(ROOT, ttl=30, poll_interval=None)
    async with AliasSubscriber(redis_client, lookup, channel=alias_channel):
        assert await serving([lookup], "shop.example.test") == [old]
        await point_alias("shop", world.project_id, new)
        elsewhere = unique_name(ALIAS_CHANNEL)
        assert await redis_client.publish(elsewhere, "shop") == 0  # nobody listens there
        assert await serving([lookup], "shop.example.test") == [old]
        assert await redis_client.publish(alias_channel, "shop") == 1  # our subscriber
        await all_serve([lookup], "shop.example.test", new)


@pytest.mark.redis
async def test_publish_with_the_redis_announcer(
    world: World, redis_client: Redis, alias_channel: str
) -> None:
    deployment_id = await world.deployment(DeploymentState.READY, target=Target.PRODUCTION)
    lookup = Lookup(ROOT, poll_interval=None)
    assert await lookup.resolve("shop.example.test") is None  # cached: no production yet
    async with AliasSubscriber(redis_client, lookup, channel=alias_channel):
        await publish(
            world.engine,
            deployment_id,
            announce=lambda names: publish_alias_change(redis_client, names, channel=alias_channel),
        )
        await all_serve([lookup], "shop.example.test", deployment_id)


@pytest.mark.redis
async def test_the_subscriber_reconnects_and_polls_meanwhile(
    world: World, alias_channel: str
) -> None:
    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    lookup = Lookup(ROOT, poll_interval=0.5)
    # Named, so that only this test's connections are killed, not other workers' subscribers.
    name = unique_name("alias-subscriber").replace(":", "-")
    client = Redis.from_url(redis_url(), client_name=name)
    subscriber = AliasSubscriber(client, lookup, channel=alias_channel, max_backoff=0.2)
    try:
        await subscriber.start()
        assert subscriber.subscribed
        checks = lookup.stats.version_checks
        await lookup.resolve("shop.example.test")
        assert lookup.stats.version_checks == checks  # pushes live: no polling
        # Kill the subscriber's connection from the server side.
        admin = Redis.from_url(redis_url())
        try:
            ours = [c for c in await admin.client_list() if c["name"] == name]
            assert ours, "the subscriber's connection is listed under its name"
            for connection in ours:
                await admin.client_kill_filter(_id=connection["id"])
        finally:
            await admin.aclose()
        await eventually(lambda: not subscriber.subscribed, what="the subscriber noticing")
        await eventually(lambda: subscriber.subscribed, what="the subscriber reconnecting")
    finally:
        await subscriber.aclose()
        await client.aclose()


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
