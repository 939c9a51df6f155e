"""A Redis restart costs no log line and no result: on a redis-server of the test's own.

Each test stops and starts that server (it keeps nothing on disk, so it comes back empty, and
every pooled connection is dead), and checks what the log holds afterwards: on the bus alone,
and through the API, whose reconcile loop writes the result and archives the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.logs.archive import archive, read_archive, read_log
from app.logs.bus import LogBusError
from app.logs.redis_bus import RedisLogBus
from app.redis_client import redis_client
from app.settings import Settings
from app.storage.local import LocalStorage
from builder.events import LogEvent
from builder.spec import log_stream
from tests.support.api import bearer
from tests.support.builds import open_builds
from tests.support.deployments import succeed, tick
from tests.support.logs import RESULT, collect, fresh_deployment_id, line
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as running:
        yield running


def texts(events: list[LogEvent]) -> list[str]:
    return [str(event.get("text", event["type"])) for event in events]


def restart(server: RedisServer) -> None:
    server.stop()
    server.start()


async def test_the_first_command_after_a_restart_succeeds(server: RedisServer) -> None:
    client = redis_client(server.url)
    try:
        await client.set("before", "1")
        restart(server)
        # Without the retry this is "Connection closed by server": the pooled one is dead.
        assert await client.set("after", "2")
        assert await client.get("after") == b"2"
    finally:
        await client.aclose()


async def test_the_result_written_just_after_a_restart_is_kept_and_archived(
    server: RedisServer, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "storage")
    bus = RedisLogBus.from_url(server.url)
    deployment_id = fresh_deployment_id()
    try:
        await bus.append(deployment_id, line("one"))
        await bus.append(deployment_id, line("two"))
        restart(server)
        await bus.append(deployment_id, RESULT)
        await archive(bus, storage, deployment_id)
        events = await read_log(bus, storage, deployment_id)
    finally:
        await bus.aclose()
    # The restart emptied Redis; the bus put back what it had written, then the result.
    assert texts(events) == ["one", "two", "result"]
    assert [event["seq"] for event in events] == [1, 2, 3]


async def test_writes_that_find_the_log_lost_at_once_restore_it_once(
    server: RedisServer,
) -> None:
    bus = RedisLogBus.from_url(server.url)
    deployment_id = fresh_deployment_id()
    try:
        await bus.extend(deployment_id, [line("one"), line("two")])
        restart(server)
        # Several writers at once (stdout and stderr pumps, other replicas' batches): each
        # write sees the log gone.
        await asyncio.gather(*(bus.append(deployment_id, line(f"after {n}")) for n in range(8)))
        events = await bus.read(deployment_id)
    finally:
        await bus.aclose()
    assert texts(events)[:2] == ["one", "two"]
    assert sorted(texts(events)[2:]) == [f"after {n}" for n in range(8)]
    assert [event["seq"] for event in events] == list(range(1, 11))


async def test_lines_appended_while_redis_is_down_are_all_kept_in_order(
    server: RedisServer,
) -> None:
    bus = RedisLogBus.from_url(server.url, retries=0)
    deployment_id = fresh_deployment_id()
    try:
        await bus.append(deployment_id, line("before"))
        server.stop()
        assert await bus.append(deployment_id, line("down 1")) == 0  # held
        assert await bus.extend(deployment_id, [line("down 2"), line("down 3")]) == 0
        await bus.append(deployment_id, RESULT)
        with pytest.raises(LogBusError):
            await collect(bus.tail(deployment_id))
        server.start()
        events = await bus.read(deployment_id)
        tailed = await collect(bus.tail(deployment_id))
    finally:
        await bus.aclose()
    expected = ["before", "down 1", "down 2", "down 3", "result"]
    assert texts(events) == expected
    assert texts(tailed) == expected
    assert [event["seq"] for event in events] == [1, 2, 3, 4, 5]


async def test_a_long_outage_drops_lines_past_the_limit_and_says_so_but_keeps_the_result(
    server: RedisServer,
) -> None:
    redis = redis_client(server.url, retries=0)
    bus = RedisLogBus(redis, max_held=2, flush_backoff=(0.05, 0.1))
    deployment_id = fresh_deployment_id()
    try:
        server.stop()
        await bus.extend(deployment_id, [line(str(n)) for n in range(5)])
        await bus.append(deployment_id, RESULT)
        server.start()
        events = await bus.read(deployment_id)
    finally:
        await bus.aclose()
        await redis.aclose()
    # Ordered as written: the two held lines, the result, then how many went.
    assert texts(events) == [
        "0",
        "1",
        "result",
        "3 log lines were dropped while Redis was unreachable",
    ]


async def test_a_long_outage_holds_no_more_than_its_byte_limit_of_long_lines(
    server: RedisServer,
) -> None:
    redis = redis_client(server.url, retries=0)
    # Room for two of these lines: a build printing 1 MiB lines holds no more than the limit.
    long = "x" * 1000
    bus = RedisLogBus(redis, max_held_bytes=2500, flush_backoff=(0.05, 0.1))
    deployment_id = fresh_deployment_id()
    try:
        server.stop()
        await bus.extend(deployment_id, [line(f"{n} {long}") for n in range(5)])
        await bus.append(deployment_id, RESULT)
        server.start()
        events = await bus.read(deployment_id)
    finally:
        await bus.aclose()
        await redis.aclose()
    assert texts(events) == [
        f"0 {long}",
        f"1 {long}",
        "result",
        "3 log lines were dropped while Redis was unreachable",
    ]


async def test_a_read_gives_up_while_redis_stays_away(server: RedisServer) -> None:
    redis = redis_client(server.url, retries=0)
    bus = RedisLogBus(redis, read_wait_s=0.2, flush_backoff=(0.05, 0.05))
    deployment_id = fresh_deployment_id()
    try:
        server.stop()
        await bus.append(deployment_id, line("held"))
        with pytest.raises(LogBusError, match="waits to be written"):
            await bus.read(deployment_id)
        # Another log, with nothing held, is read (and fails) straight away.
        with pytest.raises(LogBusError, match="log read: ConnectionError"):
            await bus.read(fresh_deployment_id())
    finally:
        await bus.aclose()
        await redis.aclose()


async def test_held_events_redis_refuses_are_dropped_and_logged(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis = redis_client(server.url, retries=0)
    # The flusher waits 2 s between tries: time to break the stream before it writes.
    bus = RedisLogBus(redis, flush_backoff=(2.0, 2.0))
    broken, fine = fresh_deployment_id(), fresh_deployment_id()
    try:
        server.stop()
        await bus.append(broken, line("refused"))
        await bus.append(fine, line("kept"))
        await asyncio.sleep(0.2)  # the flusher's first try fails; the next is 2 s away
        server.start()
        # Not a stream: Redis answers the held XADD with WRONGTYPE.
        await redis.set(log_stream(broken), "not a stream")
        with caplog.at_level(logging.ERROR, logger="app.logs.redis_bus"):
            assert texts(await bus.read(fine)) == ["kept"]
        with pytest.raises(LogBusError, match="log append: ResponseError"):
            await bus.append(broken, line("refused again"))
        with pytest.raises(LogBusError, match="log read: ResponseError"):
            await bus.read(broken)
    finally:
        await bus.aclose()
        await redis.aclose()
    assert "held log events refused" in caplog.text


async def test_closing_with_events_still_held_says_how_many_were_not_written(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    bus = RedisLogBus.from_url(server.url, retries=0)
    server.stop()
    await bus.append(fresh_deployment_id(), line("never written"))
    with caplog.at_level(logging.WARNING, logger="app.logs.redis_bus"):
        await bus.aclose()
    assert "log events not written" in caplog.text


async def test_a_tail_follows_the_log_through_a_restart(server: RedisServer) -> None:
    bus = RedisLogBus.from_url(server.url)
    deployment_id = fresh_deployment_id()
    try:
        await bus.append(deployment_id, line("one"))
        seen: list[LogEvent] = []

        async def follow() -> None:
            async for event in bus.tail(deployment_id, heartbeat=0.2):
                if event is not None:
                    seen.append(event)

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.3)
        restart(server)
        await bus.append(deployment_id, line("two"))
        await bus.append(deployment_id, RESULT)
        await asyncio.wait_for(follower, 10)
    finally:
        await bus.aclose()
    assert texts(seen) == ["one", "two", "result"]


async def test_journals_of_logs_nobody_writes_to_any_more_are_let_go(
    server: RedisServer,
) -> None:
    redis = Redis.from_url(server.url)
    bus = RedisLogBus(redis, journal_idle_s=0.0)
    old, new = fresh_deployment_id(), fresh_deployment_id()
    try:
        await bus.append(old, line("old"))
        await asyncio.sleep(0.01)
        await bus.append(new, line("new"))
        restart(server)
        # The old log's journal was let go: Redis lost it for good. The new one comes back.
        await bus.append(new, line("new again"))
        await bus.append(old, line("old again"))
        assert texts(await bus.read(old)) == ["old again"]
        assert texts(await bus.read(new)) == ["new", "new again"]
    finally:
        await bus.aclose()
        await redis.aclose()


async def test_the_journals_together_stay_within_their_byte_limit_oldest_let_go_first(
    server: RedisServer,
) -> None:
    redis = Redis.from_url(server.url)
    # Room for about one log's lines: a replica whose builds end elsewhere keeps no more.
    bus = RedisLogBus(redis, max_journal_bytes=200)
    old, new = fresh_deployment_id(), fresh_deployment_id()
    try:
        await bus.append(old, line("old " + "x" * 100))
        await asyncio.sleep(0.01)
        await bus.append(new, line("new " + "y" * 100))
        restart(server)
        # Over the limit, the log written to longest ago lost its journal; the newest kept it.
        await bus.append(new, line("new again"))
        await bus.append(old, line("old again"))
        assert texts(await bus.read(old)) == ["old again"]
        assert texts(await bus.read(new)) == ["new " + "y" * 100, "new again"]
    finally:
        await bus.aclose()
        await redis.aclose()


def test_a_build_that_ends_just_after_a_redis_restart_keeps_its_result_and_archive(
    server: RedisServer, make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(SCALEMESH_DATABASE_URL=database_url, SCALEMESH_REDIS_URL=server.url)
    with contextlib.contextmanager(open_builds)(settings) as builds:
        deployment_id = builds.building()
        succeed(builds.client, builds.runner, deployment_id)
        restart(server)  # every pooled connection of the API is dead now
        tick(builds.client)  # the loop sees the build done: ready, result, archive

        shown = builds.shown(deployment_id)
        storage = builds.client.app.state.services.reconciler.storage
        archived = builds.client.run(lambda: read_archive(storage, deployment_id))
        response = builds.client.get(
            f"/deployments/{deployment_id}/logs",
            headers={**bearer(builds.user_token), "Accept": "application/x-ndjson"},
        )

    assert shown["state"] == "ready"
    assert archived is not None
    assert [event["type"] for event in archived] == ["line", "step", "line", "end", "result"]
    assert archived[-1]["state"] == "ready"
    assert [event["seq"] for event in archived] == [1, 2, 3, 4, 5]
    assert response.status_code == 200
    assert [json.loads(row) for row in response.text.splitlines()] == archived
