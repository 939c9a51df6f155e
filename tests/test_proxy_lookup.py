"""Hostname → deployment lookup in one proxy replica: labels, custom domains, caching.

How several replicas learn that an alias moved is in `test_proxy_aliases.py`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import proxy.lookup
from app.deployments.lifecycle import DeploymentState
from app.deployments.publish import point_alias
from app.tables import Deployment
from builder.spec import output_prefix
from proxy import queries
from proxy.lookup import MISSING, Lookup
from proxy.target import Target
from tests.support.lookup import ROOT, FakeClock, World
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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


async def test_a_custom_domain_follows_its_projects_production_label(world: World) -> None:
    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    await world.domain("www.shop.io")
    lookup = Lookup(ROOT)
    target = await lookup.resolve("WWW.shop.io.")
    assert isinstance(target, Target)
    assert target.deployment_id == deployment_id
    assert target.name == "www.shop.io"
    # Under the root domain but two labels deep: never an alias, never a domain.
    assert await lookup.resolve("www.shop.example.test") is None


async def test_an_alias_row_with_a_full_hostname_serves_nothing(world: World) -> None:
    """Custom domains are `Domain` rows now: an old hand-made alias row is no way in."""
    deployment_id = await world.deployment()
    await point_alias("www.shop.io", world.project_id, deployment_id)
    assert await Lookup(ROOT).resolve("www.shop.io") is None


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
    assert lookup.peek("shop.example.test") == target  # a version check is due: it runs beside
    await lookup.resolve("shop.example.test")
    clock.now += 30
    assert lookup.peek("shop.example.test") is MISSING  # expired
    assert len(world.queries) == queries + 1, "peeking never queries"
    await lookup.aclose()


async def test_a_due_version_check_runs_beside_the_requests_the_cache_answers(
    world: World,
) -> None:
    """Requests do not wait for the poll's query; a move it finds is honoured when it ends."""
    first = await world.deployment()
    await point_alias("shop", world.project_id, first)
    clock = FakeClock()
    lookup = Lookup(ROOT, ttl=30, poll_interval=0.5, clock=clock)
    target = await lookup.resolve("shop.example.test")
    second = await world.deployment()
    await point_alias("shop", world.project_id, second)
    clock.now += 0.6

    answers = [lookup.peek("shop.example.test") for _ in range(3)]
    await eventually(lambda: lookup.peek("shop.example.test") is MISSING, what="the flush")
    moved = await lookup.resolve("shop.example.test")

    assert answers == [target] * 3
    assert lookup.stats.version_checks == 2  # one check for the three, and the first one
    assert moved is not None
    assert moved.deployment_id == second
    await lookup.aclose()


async def test_a_failed_version_check_is_logged_and_tried_again(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    clock = FakeClock()
    lookup = Lookup(ROOT, ttl=30, poll_interval=0.5, clock=clock)
    target = await lookup.resolve("shop.example.test")
    clock.now += 0.6
    real = queries.version

    async def unreachable() -> Any:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(queries, "version", unreachable)
    during = lookup.peek("shop.example.test")
    await eventually(lambda: "alias version check failed" in caplog.text, what="the failure")
    monkeypatch.setattr(queries, "version", real)
    after = lookup.peek("shop.example.test")
    await eventually(lambda: lookup.stats.version_checks == 3, what="the retry")
    await lookup.aclose()

    assert during == after == target
    failures = [r for r in caplog.records if r.getMessage() == "alias version check failed"]
    assert [getattr(record, "error", None) for record in failures] == ["database unreachable"]
    assert lookup.stats.version_checks == 3  # the first, the failed one, and the retry


async def test_closing_lets_a_check_under_way_end_and_stops_one_that_hangs(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A query cancelled midway leaves its database connection open until the collector finds
    # it; a check that hangs must still not hold the proxy's shutdown.
    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    ended: list[str] = []
    real = queries.version

    async def answering() -> Any:
        await asyncio.sleep(0.05)
        version = await real()
        ended.append("answered")
        return version

    async def hanging() -> Any:
        await asyncio.Event().wait()

    monkeypatch.setattr(proxy.lookup, "CLOSE_WAIT_S", 0.1)
    checks = []
    for check in (answering, hanging):
        clock = FakeClock()
        lookup = Lookup(ROOT, ttl=30, poll_interval=0.5, clock=clock)
        await lookup.resolve("shop.example.test")
        monkeypatch.setattr(queries, "version", check)
        clock.now += 0.6
        lookup.peek("shop.example.test")
        checks.append(lookup._checking)
        await asyncio.wait_for(lookup.aclose(), timeout=5)
        monkeypatch.setattr(queries, "version", real)

    assert ended == ["answered"]
    assert [task is not None and task.cancelled() for task in checks] == [False, True]


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


async def test_concurrent_version_checks_run_once(world: World) -> None:
    lookup = Lookup(ROOT)
    await asyncio.gather(*(lookup.resolve(f"h{n}.example.test") for n in range(5)))
    assert lookup.stats.version_checks == 1


async def test_the_cache_holds_at_most_max_entries(world: World) -> None:
    lookup = Lookup(ROOT, poll_interval=None, max_entries=3)
    for name in "abcde":
        await lookup.resolve(f"{name}.example.test")
    assert lookup.stats.entries == 3


async def test_an_answer_read_before_an_invalidation_is_not_cached(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    lookup = Lookup(ROOT, poll_interval=None)
    reading, release = asyncio.Event(), asyncio.Event()
    real = queries.alias_target

    async def slow_query(name: str) -> Any:
        answer = await real(name)
        reading.set()
        await release.wait()
        return answer

    monkeypatch.setattr(queries, "alias_target", slow_query)
    pending = asyncio.create_task(lookup.resolve("shop.example.test"))
    await reading.wait()
    lookup.invalidate(["shop"])  # the alias moved while the query was out
    release.set()
    assert await pending is not None  # this request gets what was read...
    assert lookup.stats.entries == 0  # ...but the next one asks again


async def test_a_failed_query_reaches_the_caller(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(name: str) -> Any:
        raise OSError("database unreachable")

    monkeypatch.setattr(queries, "alias_target", broken)
    lookup = Lookup(ROOT, poll_interval=None)
    with pytest.raises(OSError, match="unreachable"):
        await lookup.resolve("shop.example.test")
    assert lookup.stats.entries == 0
