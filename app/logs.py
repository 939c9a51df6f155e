"""Build logs: an ordered, append-only log per deployment, with a live tail (DESIGN §8).

Events are the dicts described in `builder.spec` (types `line`, `step`, `result`). The bus
gives each a `seq` (1, 2, 3, ...) when it is appended; readers ask for events after a seq.
`MemoryLogBus` serves one process (`scalemesh dev`); `RedisLogBus` keeps each log in a Redis
stream that the builder writes to directly, from its own machine. When a deployment ends its
log is archived to storage as NDJSON and the live copy is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncGenerator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.settings import Settings
from app.storage import ObjectNotFound, Storage
from builder.spec import LOGS_ROOT, log_stream

log = logging.getLogger(__name__)

LogEvent = dict[str, Any]
"""An event as stored: the builder's dict plus `seq`."""

MAX_EVENTS = 100_000
"""Events kept per live log; past this the oldest go (the builder trims its stream the same)."""

STREAM_FIELD = "e"
"""The one field of each stream entry: the event as JSON, without `seq`.

Cross-process contract with the builder's Redis sink: `XADD <log_stream(id)> MAXLEN ~ 100000
0-* e <json>`. The `0-*` id makes Redis number entries 0-1, 0-2, ... atomically across every
writer, so the entry id *is* the seq.
"""

ARCHIVE_CONTENT_TYPE = "application/x-ndjson"

_PAGE = 1000
"""Stream entries fetched per XRANGE / XREAD round trip."""


class LogBusError(RuntimeError):
    """The log bus could not be reached or refused the operation."""


# Runtime-checkable: Litestar checks an injected dependency with isinstance() against its
# annotated type, and a plain Protocol refuses isinstance().
@runtime_checkable
class LogBus(Protocol):
    async def append(self, deployment_id: str, event: LogEvent) -> int:
        """Store one event (any `seq` in it is ignored); return the seq it was given."""

    async def read(self, deployment_id: str, since: int = 0) -> list[LogEvent]:
        """Every stored event with seq > since, in order ([] for an unknown deployment)."""

    def tail(
        self, deployment_id: str, since: int = 0, *, heartbeat: float = 15.0
    ) -> AsyncGenerator[LogEvent | None, None]:
        """Events with seq > since as they arrive, ending after a `result` event.

        Yields None when nothing arrived for `heartbeat` seconds, so a caller can keep a
        connection alive or give up. Close it (`aclose()`, or `contextlib.aclosing`) when
        stopping early, so the bus can let go of what the tail holds.
        """

    async def forget(self, deployment_id: str) -> None:
        """Drop the live copy once the log is archived."""

    async def ping(self) -> None:
        """Raise `LogBusError` if the bus cannot be reached."""

    async def aclose(self) -> None: ...


def _is_result(event: LogEvent) -> bool:
    return event.get("type") == "result"


def _without_seq(event: LogEvent) -> LogEvent:
    return {name: value for name, value in event.items() if name != "seq"}


# --- in memory ------------------------------------------------------------------------------


@dataclass(eq=False)
class _MemoryLog:
    events: list[LogEvent] = field(default_factory=list)
    dropped: int = 0
    """How many of the oldest events were trimmed away: `events[0]` has seq `dropped + 1`."""
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    tails: int = 0

    @property
    def last_seq(self) -> int:
        return self.dropped + len(self.events)

    def has_after(self, seq: int) -> bool:
        return self.last_seq > seq

    def after(self, seq: int) -> list[LogEvent]:
        return self.events[max(0, seq - self.dropped) :]


class MemoryLogBus:
    """Logs held in this process: for one machine, where the builder is our subprocess."""

    def __init__(self, *, max_events: int = MAX_EVENTS) -> None:
        self._logs: dict[str, _MemoryLog] = {}
        self._max_events = max_events

    def _live(self, deployment_id: str) -> _MemoryLog:
        live = self._logs.get(deployment_id)
        if live is None:
            live = self._logs[deployment_id] = _MemoryLog()
        return live

    async def append(self, deployment_id: str, event: LogEvent) -> int:
        live = self._live(deployment_id)
        seq = live.last_seq + 1
        live.events.append({**_without_seq(event), "seq": seq})
        # Trim in chunks, like Redis's `MAXLEN ~`: deleting one event per append would move
        # the whole list every time.
        excess = len(live.events) - self._max_events
        if excess > self._max_events // 10:
            del live.events[:excess]
            live.dropped += excess
        async with live.changed:
            live.changed.notify_all()
        return seq

    async def read(self, deployment_id: str, since: int = 0) -> list[LogEvent]:
        live = self._logs.get(deployment_id)
        if live is None:
            return []
        # Copies: a caller adding a field must not change what the next reader gets.
        return [dict(event) for event in live.after(since)]

    async def tail(
        self, deployment_id: str, since: int = 0, *, heartbeat: float = 15.0
    ) -> AsyncGenerator[LogEvent | None, None]:
        # Created here if need be, so that the first append wakes this tail up.
        live = self._live(deployment_id)
        live.tails += 1
        seq = max(0, since)
        try:
            while True:
                async with live.changed:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(heartbeat):
                            await live.changed.wait_for(functools.partial(live.has_after, seq))
                    fresh = [dict(event) for event in live.after(seq)]
                if not fresh:
                    yield None
                    continue
                for event in fresh:
                    seq = event["seq"]
                    yield event
                    if _is_result(event):
                        return
        finally:
            live.tails -= 1
            # A tail on a deployment that never logged must not leave an empty log behind.
            if not live.tails and not live.last_seq and self._logs.get(deployment_id) is live:
                del self._logs[deployment_id]

    async def forget(self, deployment_id: str) -> None:
        self._logs.pop(deployment_id, None)

    async def ping(self) -> None:
        """The in-process log bus lives and dies with this process: if we answer, it does."""

    async def aclose(self) -> None:
        self._logs.clear()


# --- Redis streams --------------------------------------------------------------------------


@contextlib.contextmanager
def _redis_errors(doing: str) -> Iterator[None]:
    """Keep redis-py's exceptions inside this module."""
    try:
        yield
    except RedisError as exc:
        raise LogBusError(f"{doing}: {type(exc).__name__}: {exc}") from None


def _text(value: bytes | str) -> str:
    # The client may or may not decode responses; both must work.
    return value.decode() if isinstance(value, bytes) else value


def _seq_of(entry_id: Any) -> int:
    """`0-17` → 17."""
    return int(_text(entry_id).partition("-")[2])


class RedisLogBus:
    """Each log is a Redis stream (`builder.spec.log_stream`), entry id `0-<seq>`.

    Works with any `redis.asyncio.Redis` client (bytes or decoded responses, RESP2 or RESP3),
    provided its `socket_timeout` is unset or longer than a tail's heartbeat: a tail waits
    in `XREAD BLOCK` that long. Each wait borrows a pooled connection only while it blocks;
    redis-py drops a connection whose read was cancelled, so a closed tail holds nothing.
    """

    def __init__(
        self, redis: Redis, *, max_events: int = MAX_EVENTS, owns_client: bool = False
    ) -> None:
        self._redis = redis
        self._max_events = max_events
        self._owns_client = owns_client

    @classmethod
    def from_url(cls, url: str, *, max_events: int = MAX_EVENTS) -> RedisLogBus:
        """A bus with a client of its own, closed by `aclose()`."""
        return cls(Redis.from_url(url), max_events=max_events, owns_client=True)

    async def append(self, deployment_id: str, event: LogEvent) -> int:
        payload = json.dumps(_without_seq(event), separators=(",", ":"), ensure_ascii=False)
        with _redis_errors("log append"):
            entry_id = await self._redis.xadd(
                log_stream(deployment_id),
                {STREAM_FIELD: payload},
                id="0-*",
                maxlen=self._max_events,
                approximate=True,
            )
        return _seq_of(entry_id)

    async def read(self, deployment_id: str, since: int = 0) -> list[LogEvent]:
        key = log_stream(deployment_id)
        events: list[LogEvent] = []
        after = max(0, since)
        while True:
            with _redis_errors("log read"):
                entries = (
                    await self._redis.xrange(key, min=f"(0-{after}", max="+", count=_PAGE) or []
                )
            events.extend(self._events(deployment_id, entries))
            if len(entries) < _PAGE:
                return events
            after = _seq_of(entries[-1][0])

    async def tail(
        self, deployment_id: str, since: int = 0, *, heartbeat: float = 15.0
    ) -> AsyncGenerator[LogEvent | None, None]:
        key = log_stream(deployment_id)
        block_ms = max(1, round(heartbeat * 1000))
        after = max(0, since)
        while True:
            # One command both replays what is stored after `after` and waits for more.
            with _redis_errors("log tail"):
                reply = await self._redis.xread({key: f"0-{after}"}, count=_PAGE, block=block_ms)
            entries = _xread_entries(reply)
            if not entries:
                yield None
                continue
            after = _seq_of(entries[-1][0])
            for event in self._events(deployment_id, entries):
                yield event
                if _is_result(event):
                    return

    def _events(self, deployment_id: str, entries: Iterable[Any]) -> Iterator[LogEvent]:
        for entry_id, fields in entries:
            raw = fields.get(STREAM_FIELD.encode()) or fields.get(STREAM_FIELD)
            try:
                event = json.loads(raw)
            except (TypeError, ValueError):
                event = None
            if not isinstance(event, dict):
                # Another writer broke the contract; one bad entry must not end the log.
                log.warning(
                    "unreadable log entry skipped",
                    extra={"deployment_id": deployment_id, "entry_id": _text(entry_id)},
                )
                continue
            event["seq"] = _seq_of(entry_id)
            yield event

    async def forget(self, deployment_id: str) -> None:
        with _redis_errors("log forget"):
            await self._redis.delete(log_stream(deployment_id))

    async def ping(self) -> None:
        with _redis_errors("redis ping"):
            await self._redis.ping()

    async def aclose(self) -> None:
        # An injected client belongs to whoever made it (the app's lifespan).
        if self._owns_client:
            await self._redis.aclose()


def _xread_entries(reply: Any) -> list[Any]:
    """The entries of a one-stream XREAD reply, whichever protocol the client speaks."""
    if isinstance(reply, dict):  # RESP3: {stream: [entries]}
        return [entry for batches in reply.values() for batch in batches for entry in batch]
    return [entry for _stream, entries in reply for entry in entries]  # RESP2


def log_bus_from_settings(settings: Settings, redis: Redis | None) -> LogBus:
    """Redis streams when the app has a Redis client (`SCALEMESH_REDIS_URL`), else memory.

    `settings` already decided whether `redis` exists (the lifespan owns and closes that
    client); it is taken for symmetry with `storage_from_settings`, for knobs to come.
    """
    if redis is not None:
        return RedisLogBus(redis)
    return MemoryLogBus()


# --- archive --------------------------------------------------------------------------------


def archive_key(deployment_id: str) -> str:
    return f"{LOGS_ROOT}/{deployment_id}.ndjson"


async def archive(bus: LogBus, storage: Storage, deployment_id: str) -> None:
    """Write the whole log to storage as NDJSON, then drop the live copy.

    A second call finds the bus empty and leaves the archive alone, so retrying is safe.
    Events appended after the read are lost: archive once the deployment has its result.
    """
    events = await bus.read(deployment_id)
    if not events:
        return
    body = "".join(json.dumps(event, ensure_ascii=False) + "\n" for event in events)
    await storage.put(archive_key(deployment_id), body.encode(), content_type=ARCHIVE_CONTENT_TYPE)
    await bus.forget(deployment_id)


async def read_archive(storage: Storage, deployment_id: str) -> list[LogEvent] | None:
    """The archived log, or None when the deployment has not been archived."""
    try:
        body = await storage.get(archive_key(deployment_id))
    except ObjectNotFound:
        return None
    return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


async def read_log(
    bus: LogBus, storage: Storage, deployment_id: str, since: int = 0
) -> list[LogEvent]:
    """Events with seq > since: live from the bus, else from the archive, else []."""
    events = await bus.read(deployment_id, since)
    if events:
        return events
    archived = await read_archive(storage, deployment_id) or []
    return [event for event in archived if event["seq"] > since]


async def tail_log(
    bus: LogBus, storage: Storage, deployment_id: str, since: int = 0, *, heartbeat: float = 15.0
) -> AsyncGenerator[LogEvent | None, None]:
    """What a log viewer needs: every event after `since` once, live, ending with the result.

    A finished (archived) log is replayed from storage. A live one is tailed on the bus; if it
    gets archived meanwhile (the viewer was slow, or came just as the build ended), the rest
    comes from the archive at the next heartbeat.
    """
    seen = max(0, since)
    archived = await read_archive(storage, deployment_id)
    if archived is None:
        async with contextlib.aclosing(bus.tail(deployment_id, seen, heartbeat=heartbeat)) as live:
            async for event in live:
                if event is not None:
                    seen = event["seq"]
                    yield event
                    continue
                archived = await read_archive(storage, deployment_id)
                if archived is not None:
                    break
                yield None
            else:
                return  # the bus delivered the result
    for event in archived:
        if event["seq"] > seen:
            yield event


# --- plain text -----------------------------------------------------------------------------


def render_text(events: Iterable[LogEvent]) -> str:
    """The log as a person reads it: timestamped lines, step markers, the result last."""
    lines = [text for event in events if (text := _render(event)) is not None]
    return "".join(line + "\n" for line in lines)


def _render(event: LogEvent) -> str | None:
    kind = event.get("type")
    if kind == "line":
        ts = event.get("ts")
        clock = (
            datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S")
            if isinstance(ts, int | float)
            else "--:--:--"
        )
        return f"[{clock}] {str(event.get('text', '')).rstrip()}"
    if kind == "step":
        step = event.get("step", "?")
        if event.get("status") == "start":
            return f"── {step} ──"
        outcome = "ok" if event.get("ok") else "failed"
        duration = event.get("duration_ms")
        took = f" in {duration / 1000:.1f} s" if isinstance(duration, int | float) else ""
        return f"── {step}: {outcome}{took} ──"
    if kind == "result":
        state = event.get("state", "?")
        detail = event.get("error") or event.get("url")
        return f"── deployment {state}: {detail} ──" if detail else f"── deployment {state} ──"
    return None  # a newer builder's event kind: the JSON view has it, the text view skips it
