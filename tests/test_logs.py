"""The log buses' shared contract (memory and Redis streams), and archiving logs to storage.

What each bus does beyond the contract, and the text view of a log, are in
`test_logs_buses.py`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from app.logs.archive import (
    ARCHIVE_CONTENT_TYPE,
    archive,
    archive_key,
    read_archive,
    read_log,
    tail_log,
)
from app.logs.bus import LogBus, MemoryLogBus
from app.logs.redis_bus import RedisLogBus
from app.logs.text import render_text
from app.storage import Storage
from app.storage.local import LocalStorage
from builder.events import LogEvent
from tests.support.logs import RESULT, NewId, collect, fresh_deployment_id, line, numbered
from tests.support.services import redis_url

pytestmark = pytest.mark.anyio


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
        made.append(fresh_deployment_id())
        return made[-1]

    yield make
    for deployment_id in made:
        await bus.forget(deployment_id)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return LocalStorage(tmp_path / "storage")


# --- the bus contract -----------------------------------------------------------------------


async def test_append_numbers_events_and_read_returns_them_in_order(
    bus: LogBus, new_id: NewId
) -> None:
    deployment_id = new_id()
    events = [line("one"), {**line("two"), "seq": 99}, {"type": "step", "ts": 2.5, "step": "x"}]

    seqs = [await bus.append(deployment_id, event) for event in events]

    assert seqs == [1, 2, 3]
    assert await bus.read(deployment_id) == numbered([line("one"), line("two"), events[2]])


async def test_extend_appends_a_batch_in_order_after_what_is_there(
    bus: LogBus, new_id: NewId
) -> None:
    deployment_id = new_id()
    await bus.append(deployment_id, line("first"))

    last = await bus.extend(deployment_id, [line("two"), {**line("three"), "seq": 7}])

    assert last == 3
    assert await bus.extend(deployment_id, []) == 0
    assert await bus.read(deployment_id) == numbered([line("first"), line("two"), line("three")])


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
