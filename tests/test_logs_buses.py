"""What each log bus does beyond the shared contract, choosing a bus, and the text view of a log.

Redis streams: entries another process (the builder) wrote, the cross-process format, any
client flavour, trimming, connections given back, an unreachable server. The memory bus:
trimming, and nothing left behind by tails.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
import pytest
import redis
from redis.asyncio import Redis

from app.asgi import log_bus_from_settings
from app.logs.bus import LogBusError, MemoryLogBus
from app.logs.redis_bus import RedisLogBus
from app.logs.text import render_text
from builder.events import LogEvent
from builder.spec import log_stream
from tests.support.logs import RESULT, NewId, collect, fresh_deployment_id, line, numbered
from tests.support.ports import refused_port
from tests.support.services import redis_url

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- Redis specifics ------------------------------------------------------------------------


@pytest.fixture
async def redis_ids() -> AsyncIterator[NewId]:
    """Fresh deployment ids whose streams are deleted after the test."""
    made: list[str] = []

    def make() -> str:
        made.append(fresh_deployment_id())
        return made[-1]

    yield make
    if made:
        client = Redis.from_url(redis_url())
        await client.delete(*[log_stream(deployment_id) for deployment_id in made])
        await client.aclose()


def builder_writes(deployment_id: str, events: list[LogEvent]) -> list[bytes | str]:
    """What the builder's Redis sink does, from another process: a plain sync client."""
    client = redis.Redis.from_url(redis_url())
    try:
        return [
            client.xadd(
                log_stream(deployment_id),
                {"e": json.dumps(event)},
                id="0-*",
                maxlen=100_000,
                approximate=True,
            )
            for event in events
        ]
    finally:
        client.close()


@pytest.mark.redis
async def test_redis_reads_what_another_writer_appended(redis_ids: NewId) -> None:
    deployment_id = redis_ids()
    bus = RedisLogBus.from_url(redis_url())
    try:
        async with contextlib.aclosing(bus.tail(deployment_id, heartbeat=5)) as tail:
            ids = await anyio.to_thread.run_sync(
                builder_writes, deployment_id, [line("from builder 1"), line("from builder 2")]
            )
            assert await bus.append(deployment_id, line("from the app")) == 3
            await anyio.to_thread.run_sync(builder_writes, deployment_id, [RESULT])

            tailed = await collect(tail)
        stored = await bus.read(deployment_id)
    finally:
        await bus.aclose()

    assert ids == [b"0-1", b"0-2"]
    expected = numbered([line("from builder 1"), line("from builder 2"), line("from the app")])
    assert stored == [*expected, {**RESULT, "seq": 4}]
    assert tailed == stored


@pytest.mark.redis
async def test_redis_entries_are_the_cross_process_format(redis_ids: NewId) -> None:
    deployment_id = redis_ids()
    bus = RedisLogBus.from_url(redis_url())
    await bus.append(deployment_id, {**line("x"), "seq": 7})
    await bus.aclose()

    client = redis.Redis.from_url(redis_url(), decode_responses=True)
    try:
        entries = client.xrange(log_stream(deployment_id))
    finally:
        client.close()

    assert entries is not None
    ((entry_id, fields),) = entries
    assert entry_id == "0-1"
    assert fields is not None
    assert fields.keys() == {"e"}
    assert json.loads(fields["e"]) == line("x")


@pytest.mark.redis
@pytest.mark.parametrize(
    "options",
    [{"decode_responses": True}, {"protocol": 3}, {"protocol": 3, "decode_responses": True}],
    ids=["decoded", "resp3", "resp3-decoded"],
)
async def test_redis_works_with_any_client_flavour(
    redis_ids: NewId, options: dict[str, Any]
) -> None:
    deployment_id = redis_ids()
    client = Redis.from_url(redis_url(), **options)
    bus = RedisLogBus(client)
    try:
        assert await bus.append(deployment_id, line("a")) == 1
        assert await bus.append(deployment_id, RESULT) == 2
        stored = await bus.read(deployment_id)
        tailed = await collect(bus.tail(deployment_id))
        async with contextlib.aclosing(bus.tail(deployment_id, 2, heartbeat=0.02)) as tail:
            assert await anext(tail) is None
    finally:
        await bus.aclose()
        await client.aclose()

    assert stored == tailed == numbered([line("a"), RESULT])


@pytest.mark.redis
async def test_redis_skips_entries_that_break_the_contract(redis_ids: NewId) -> None:
    deployment_id = redis_ids()
    client = redis.Redis.from_url(redis_url())
    try:
        key = log_stream(deployment_id)
        client.xadd(key, {"e": json.dumps(line("good"))}, id="0-*")
        client.xadd(key, {"other": "field"}, id="0-*")
        client.xadd(key, {"e": "not json"}, id="0-*")
        client.xadd(key, {"e": "[1, 2]"}, id="0-*")
        client.xadd(key, {"e": json.dumps(RESULT)}, id="0-*")
    finally:
        client.close()
    bus = RedisLogBus.from_url(redis_url())
    try:
        stored = await bus.read(deployment_id)
        tailed = await collect(bus.tail(deployment_id))
    finally:
        await bus.aclose()

    assert stored == tailed == [{**line("good"), "seq": 1}, {**RESULT, "seq": 5}]


@pytest.mark.redis
async def test_redis_tails_give_their_connection_back(redis_ids: NewId) -> None:
    # One connection in the pool: a tail that kept one would make the next command fail.
    client = Redis.from_url(redis_url(), max_connections=1)
    bus = RedisLogBus(client)
    deployment_id = redis_ids()
    try:
        await bus.append(deployment_id, line("a"))
        for _ in range(5):
            # Closed after an event, while nothing is in flight.
            async with contextlib.aclosing(bus.tail(deployment_id)) as tail:
                await anext(tail)
            await bus.ping()

            # Cancelled in the middle of a blocking XREAD.
            async with anyio.create_task_group() as group:
                group.start_soon(collect, bus.tail(deployment_id, since=1, heartbeat=30))
                await anyio.sleep(0.05)
                group.cancel_scope.cancel()
            await bus.ping()
            assert await bus.append(deployment_id, line("still works")) > 1
    finally:
        await bus.aclose()
        await client.aclose()


@pytest.mark.redis
async def test_redis_trims_old_events_but_keeps_numbering(redis_ids: NewId) -> None:
    deployment_id = redis_ids()
    bus = RedisLogBus.from_url(redis_url(), max_events=10)
    try:
        for n in range(1000):
            await bus.append(deployment_id, line(f"{n}"))
        events = await bus.read(deployment_id)
    finally:
        await bus.aclose()

    # `MAXLEN ~` trims whole radix-tree nodes: fewer than all, at least the last 10.
    assert 10 <= len(events) < 1000
    assert [event["seq"] for event in events] == list(range(1001 - len(events), 1001))


async def test_an_unreachable_redis_is_a_log_bus_error() -> None:
    with refused_port() as port:  # held for the whole test: nobody else can listen there
        # No retries: the client's retries only make each refusal take longer.
        bus = RedisLogBus.from_url(f"redis://127.0.0.1:{port}/0", retries=0)
        try:
            with pytest.raises(LogBusError, match="redis ping: ConnectionError") as caught:
                await bus.ping()
            assert caught.value.__cause__ is None
            # Appends are held for when Redis answers (`tests/test_logs_redis_restart.py`).
            assert await bus.append("d", line("a")) == 0
            with pytest.raises(LogBusError, match="log read"):
                await bus.read("e")
            with pytest.raises(LogBusError, match="log forget"):
                await bus.forget("d")
            with pytest.raises(LogBusError, match="log tail"):
                await collect(bus.tail("d"))
        finally:
            await bus.aclose()


# --- memory specifics -----------------------------------------------------------------------


async def test_memory_trims_old_events_but_keeps_numbering() -> None:
    bus = MemoryLogBus(max_events=10)
    for n in range(25):
        assert await bus.append("d", line(f"{n}")) == n + 1

    events = await bus.read("d")

    assert 10 <= len(events) <= 11
    assert [event["seq"] for event in events] == list(range(26 - len(events), 26))
    assert [event["seq"] for event in await bus.read("d", 22)] == [23, 24, 25]
    await bus.append("d", RESULT)
    tailed = await collect(bus.tail("d"))
    assert tailed == await bus.read("d")
    assert tailed[-1] == {**RESULT, "seq": 26}


async def test_memory_tails_leave_nothing_behind() -> None:
    bus = MemoryLogBus()
    async with contextlib.aclosing(bus.tail("never-logged", heartbeat=0.01)) as tail:
        assert await anext(tail) is None
        async with contextlib.aclosing(bus.tail("never-logged", heartbeat=0.01)) as other:
            assert await anext(other) is None
        assert await bus.read("never-logged") == []
    await bus.append("logged", line("a"))
    async with contextlib.aclosing(bus.tail("logged", heartbeat=0.01)) as tail:
        await anext(tail)

    assert list(bus._logs) == ["logged"]
    await bus.aclose()
    assert bus._logs == {}


# --- choosing a bus -------------------------------------------------------------------------


async def test_the_bus_is_chosen_by_the_redis_client() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0")

    assert isinstance(log_bus_from_settings(None), MemoryLogBus)
    chosen = log_bus_from_settings(client)
    assert isinstance(chosen, RedisLogBus)

    # The app's lifespan owns an injected client: closing the bus leaves it open.
    await chosen.aclose()
    assert client.connection_pool is not None
    await client.aclose()


# --- the text view --------------------------------------------------------------------------


def test_render_text() -> None:
    events: list[LogEvent] = [
        {"type": "step", "ts": 0, "step": "install", "status": "start"},
        {"type": "line", "ts": 3661.5, "stream": "stdout", "text": "added 12 packages\n"},
        {"type": "line", "stream": "stderr", "text": "no timestamp"},
        {"type": "step", "ts": 0, "step": "install", "status": "end", "ok": True,
         "duration_ms": 12_345},
        {"type": "step", "ts": 0, "step": "build", "status": "end", "ok": False,
         "duration_ms": 1_000},
        {"type": "step", "ts": 0, "step": "upload", "status": "end", "ok": True},
        {"type": "something-new", "ts": 0},
        {"type": "result", "ts": 0, "state": "failed", "error": "npm run build exited with 1"},
        {"type": "result", "ts": 0, "state": "ready", "error": None, "url": "https://x.example"},
    ]  # fmt: skip

    assert render_text(events) == (
        "── install ──\n"
        "[01:01:01] added 12 packages\n"
        "[--:--:--] no timestamp\n"
        "── install: ok in 12.3 s ──\n"
        "── build: failed in 1.0 s ──\n"
        "── upload: ok ──\n"
        "── deployment failed: npm run build exited with 1 ──\n"
        "── deployment ready: https://x.example ──\n"
    )
    assert render_text([]) == ""
