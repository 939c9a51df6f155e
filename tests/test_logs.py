"""The log buses' shared contract (memory and Redis streams), archiving, and the text view."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
import redis
from redis.asyncio import Redis

from app.logs import (
    ARCHIVE_CONTENT_TYPE,
    LogBus,
    LogBusError,
    LogEvent,
    MemoryLogBus,
    RedisLogBus,
    archive,
    archive_key,
    log_bus_from_settings,
    read_archive,
    read_log,
    render_text,
    tail_log,
)
from app.settings import Settings
from app.storage import LocalStorage, Storage
from builder.spec import log_stream
from tests.support.services import redis_url

pytestmark = pytest.mark.anyio

NewId = Callable[[], str]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[LogBus]:
    made: LogBus = (
        MemoryLogBus() if request.param == "memory" else RedisLogBus.from_url(redis_url())
    )
    yield made
    await made.aclose()


@pytest.fixture
async def new_id(bus: LogBus) -> AsyncIterator[NewId]:
    """Fresh deployment ids, so tests never share a stream; their logs are dropped after."""
    made: list[str] = []

    def make() -> str:
        made.append(f"test-{uuid4().hex}")
        return made[-1]

    yield make
    for deployment_id in made:
        await bus.forget(deployment_id)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return LocalStorage(tmp_path / "storage")


def line(text: str, ts: float = 1_700_000_000.0) -> LogEvent:
    return {"type": "line", "ts": ts, "stream": "stdout", "text": text, "step": "build"}


RESULT: LogEvent = {"type": "result", "ts": 1_700_000_100.0, "state": "ready", "error": None}


def numbered(events: list[LogEvent], first: int = 1) -> list[LogEvent]:
    return [{**event, "seq": seq} for seq, event in enumerate(events, start=first)]


async def collect(tail: AsyncIterator[LogEvent | None]) -> list[LogEvent]:
    with anyio.fail_after(10):
        return [event async for event in tail if event is not None]


# --- the bus contract -----------------------------------------------------------------------


async def test_append_numbers_events_and_read_returns_them_in_order(
    bus: LogBus, new_id: NewId
) -> None:
    deployment_id = new_id()
    events = [line("one"), {**line("two"), "seq": 99}, {"type": "step", "ts": 2.5, "step": "x"}]

    seqs = [await bus.append(deployment_id, event) for event in events]

    assert seqs == [1, 2, 3]
    assert await bus.read(deployment_id) == numbered([line("one"), line("two"), events[2]])


async def test_read_since(bus: LogBus, new_id: NewId) -> None:
    deployment_id = new_id()
    for text in ("a", "b", "c"):
        await bus.append(deployment_id, line(text))

    assert [event["text"] for event in await bus.read(deployment_id, 1)] == ["b", "c"]
    assert await bus.read(deployment_id, 3) == []
    assert await bus.read(deployment_id, 10) == []
    assert len(await bus.read(deployment_id, -5)) == 3
    assert await bus.read(new_id()) == []


async def test_each_deployment_has_its_own_numbering(bus: LogBus, new_id: NewId) -> None:
    first, second = new_id(), new_id()

    assert await bus.append(first, line("a")) == 1
    assert await bus.append(second, line("b")) == 1
    assert await bus.append(first, line("c")) == 2


async def test_read_returns_copies(bus: LogBus, new_id: NewId) -> None:
    deployment_id = new_id()
    await bus.append(deployment_id, line("a"))

    (event,) = await bus.read(deployment_id)
    event["text"] = "changed"

    assert (await bus.read(deployment_id))[0]["text"] == "a"


async def test_tail_gets_events_appended_meanwhile_by_another_task(
    bus: LogBus, new_id: NewId
) -> None:
    deployment_id = new_id()
    events = [line(f"line {n}") for n in range(20)] + [RESULT]
    received: list[LogEvent] = []

    async def read_live() -> None:
        received.extend(await collect(bus.tail(deployment_id, heartbeat=5)))

    async with anyio.create_task_group() as group:
        group.start_soon(read_live)
        await anyio.sleep(0.05)  # the tail is waiting before the first append
        for event in events:
            await bus.append(deployment_id, event)
            await anyio.lowlevel.checkpoint()

    assert received == numbered(events)


async def test_tail_replays_a_finished_log_and_stops_at_the_result(
    bus: LogBus, new_id: NewId
) -> None:
    deployment_id = new_id()
    for event in (line("a"), line("b"), RESULT):
        await bus.append(deployment_id, event)

    assert await collect(bus.tail(deployment_id)) == numbered([line("a"), line("b"), RESULT])
    assert await collect(bus.tail(deployment_id, since=2)) == numbered([RESULT], first=3)


async def test_tail_replays_then_continues_live(bus: LogBus, new_id: NewId) -> None:
    deployment_id = new_id()
    await bus.append(deployment_id, line("stored"))

    async with contextlib.aclosing(bus.tail(deployment_id, heartbeat=5)) as tail:
        assert await anext(tail) == numbered([line("stored")])[0]
        await bus.append(deployment_id, line("live"))
        assert await anext(tail) == numbered([line("live")], first=2)[0]
        await bus.append(deployment_id, RESULT)
        assert await anext(tail) == numbered([RESULT], first=3)[0]
        with pytest.raises(StopAsyncIteration):
            await anext(tail)


async def test_tail_yields_none_on_silence(bus: LogBus, new_id: NewId) -> None:
    deployment_id = new_id()
    await bus.append(deployment_id, line("a"))

    async with contextlib.aclosing(bus.tail(deployment_id, heartbeat=0.05)) as tail:
        assert (await anext(tail) or {})["seq"] == 1
        assert await anext(tail) is None
        assert await anext(tail) is None
        await bus.append(deployment_id, line("b"))
        assert (await anext(tail) or {})["seq"] == 2


async def test_tail_of_an_unknown_deployment_only_heartbeats(bus: LogBus, new_id: NewId) -> None:
    async with contextlib.aclosing(bus.tail(new_id(), heartbeat=0.02)) as tail:
        assert [await anext(tail) for _ in range(3)] == [None, None, None]


async def test_two_tails_each_see_every_event_once(bus: LogBus, new_id: NewId) -> None:
    deployment_id = new_id()
    await bus.append(deployment_id, line("before both"))
    events = [line(f"n{n}") for n in range(50)] + [RESULT]
    seen: dict[str, list[LogEvent]] = {}

    async def read_live(name: str) -> None:
        seen[name] = await collect(bus.tail(deployment_id, heartbeat=0.01))

    async with anyio.create_task_group() as group:
        group.start_soon(read_live, "one")
        group.start_soon(read_live, "two")
        for event in events:
            await bus.append(deployment_id, event)

    expected = numbered([line("before both"), *events])
    assert seen == {"one": expected, "two": expected}


async def test_forget_drops_the_live_copy(bus: LogBus, new_id: NewId) -> None:
    deployment_id, other = new_id(), new_id()
    await bus.append(deployment_id, line("a"))
    await bus.append(other, line("b"))

    await bus.forget(deployment_id)
    await bus.forget(new_id())  # unknown: nothing to do

    assert await bus.read(deployment_id) == []
    assert len(await bus.read(other)) == 1


async def test_ping(bus: LogBus) -> None:
    await bus.ping()


async def test_implementations_pass_for_the_protocol(bus: LogBus) -> None:
    # Litestar checks injected dependencies with isinstance() against the annotated type.
    assert isinstance(bus, LogBus)
    assert not isinstance(object(), LogBus)


async def test_many_events_go_through(bus: LogBus, new_id: NewId) -> None:
    # A sanity check on volume and paging, not a benchmark.
    deployment_id = new_id()
    for n in range(5000):
        await bus.append(deployment_id, line(f"line {n}"))
    await bus.append(deployment_id, RESULT)

    events = await bus.read(deployment_id)
    tailed = await collect(bus.tail(deployment_id))

    assert [event["seq"] for event in events] == list(range(1, 5002))
    assert events[4999]["text"] == "line 4999"
    assert tailed == events
    assert len(await bus.read(deployment_id, 4321)) == 5001 - 4321


# --- archive, read_log, tail_log ------------------------------------------------------------


async def test_archive_moves_the_log_to_storage(
    bus: LogBus, new_id: NewId, storage: Storage
) -> None:
    deployment_id = new_id()
    events = [line("héllo ✓"), line("b"), RESULT]
    for event in events:
        await bus.append(deployment_id, event)

    await archive(bus, storage, deployment_id)

    assert await bus.read(deployment_id) == []
    body = await storage.get(archive_key(deployment_id))
    assert archive_key(deployment_id) == f"__logs/{deployment_id}.ndjson"
    assert [json.loads(row) for row in body.decode().splitlines()] == numbered(events)
    assert await read_archive(storage, deployment_id) == numbered(events)
    assert await read_log(bus, storage, deployment_id) == numbered(events)
    assert await read_log(bus, storage, deployment_id, since=2) == numbered([RESULT], first=3)
    assert render_text(await read_log(bus, storage, deployment_id)).splitlines() == [
        "[22:13:20] héllo ✓",
        "[22:13:20] b",
        "── deployment ready ──",
    ]


async def test_archive_again_keeps_the_archive(
    bus: LogBus, new_id: NewId, storage: Storage
) -> None:
    deployment_id = new_id()
    await bus.append(deployment_id, line("a"))
    await archive(bus, storage, deployment_id)

    await archive(bus, storage, deployment_id)

    assert await read_log(bus, storage, deployment_id) == numbered([line("a")])


async def test_read_log_prefers_the_live_copy_and_knows_no_strangers(
    bus: LogBus, new_id: NewId, storage: Storage
) -> None:
    deployment_id = new_id()
    await bus.append(deployment_id, line("live"))

    assert await read_log(bus, storage, deployment_id) == numbered([line("live")])
    assert await read_log(bus, storage, deployment_id, since=1) == []
    assert await read_log(bus, storage, new_id()) == []
    assert await read_archive(storage, deployment_id) is None


async def test_archive_is_ndjson_in_storage(tmp_path: Path) -> None:
    bus = MemoryLogBus()
    seen: dict[str, Any] = {}

    class Recording(LocalStorage):
        async def put(self, key: str, data: bytes, **headers: Any) -> None:
            seen[key] = headers
            await super().put(key, data, **headers)

    await bus.append("d1", line("a"))
    await archive(bus, Recording(tmp_path), "d1")

    assert seen == {"__logs/d1.ndjson": {"content_type": ARCHIVE_CONTENT_TYPE}}
    assert (tmp_path / "__logs" / "d1.ndjson").read_bytes().endswith(b"}\n")


async def test_tail_log_replays_an_archived_log(
    bus: LogBus, new_id: NewId, storage: Storage
) -> None:
    deployment_id = new_id()
    for event in (line("a"), line("b"), RESULT):
        await bus.append(deployment_id, event)
    await archive(bus, storage, deployment_id)

    assert await collect(tail_log(bus, storage, deployment_id)) == numbered(
        [line("a"), line("b"), RESULT]
    )
    assert await collect(tail_log(bus, storage, deployment_id, 2)) == numbered([RESULT], first=3)


async def test_tail_log_follows_a_live_log_to_its_result(
    bus: LogBus, new_id: NewId, storage: Storage
) -> None:
    deployment_id = new_id()
    await bus.append(deployment_id, line("a"))

    async with contextlib.aclosing(tail_log(bus, storage, deployment_id, heartbeat=0.02)) as tail:
        assert (await anext(tail) or {})["seq"] == 1
        assert await anext(tail) is None  # live, silent, not archived
        await bus.append(deployment_id, RESULT)
        assert (await anext(tail) or {})["type"] == "result"
        with pytest.raises(StopAsyncIteration):
            await anext(tail)


async def test_tail_log_switches_to_the_archive_when_the_log_is_archived_meanwhile(
    bus: LogBus, new_id: NewId, storage: Storage
) -> None:
    deployment_id = new_id()
    await bus.append(deployment_id, line("a"))

    async with contextlib.aclosing(tail_log(bus, storage, deployment_id, heartbeat=0.05)) as tail:
        assert (await anext(tail) or {})["seq"] == 1
        # Another replica finishes the deployment and archives it while we wait on the bus.
        finished = numbered([line("a"), line("b"), RESULT])
        body = "".join(json.dumps(event) + "\n" for event in finished).encode()
        await storage.put(archive_key(deployment_id), body)
        await bus.forget(deployment_id)

        rest = await collect(tail)

    assert rest == finished[1:]


# --- Redis specifics ------------------------------------------------------------------------


@pytest.fixture
async def redis_ids() -> AsyncIterator[NewId]:
    made: list[str] = []

    def make() -> str:
        made.append(f"test-{uuid4().hex}")
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


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_an_unreachable_redis_is_a_log_bus_error() -> None:
    bus = RedisLogBus.from_url(f"redis://127.0.0.1:{closed_port()}/0")
    try:
        with pytest.raises(LogBusError, match="redis ping: ConnectionError") as caught:
            await bus.ping()
        assert caught.value.__cause__ is None
        with pytest.raises(LogBusError, match="log append"):
            await bus.append("d", line("a"))
        with pytest.raises(LogBusError, match="log read"):
            await bus.read("d")
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


async def test_the_bus_is_chosen_by_the_redis_client(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    client = Redis.from_url("redis://127.0.0.1:1/0")

    assert isinstance(log_bus_from_settings(settings, None), MemoryLogBus)
    chosen = log_bus_from_settings(settings, client)
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
