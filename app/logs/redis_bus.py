"""The Redis log bus: each deployment's log is a Redis stream, shared with the builder."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.logs.bus import MAX_EVENTS, LogBusError, is_result, without_seq
from builder.events import LogEvent
from builder.spec import log_stream

log = logging.getLogger(__name__)

STREAM_FIELD = "e"
"""The one field of each stream entry: the event as JSON, without `seq`.

Cross-process contract with the builder's Redis sink: `XADD <log_stream(id)> MAXLEN ~ 100000
0-* e <json>`. The `0-*` id makes Redis number entries 0-1, 0-2, ... atomically across every
writer, so the entry id *is* the seq.
"""


_PAGE = 1000
"""Stream entries fetched per XRANGE / XREAD round trip."""


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
        payload = json.dumps(without_seq(event), separators=(",", ":"), ensure_ascii=False)
        with _redis_errors("log append"):
            entry_id = await self._redis.xadd(
                log_stream(deployment_id),
                {STREAM_FIELD: payload},
                id="0-*",
                maxlen=self._max_events,
                approximate=True,
            )
        return _seq_of(entry_id)

    async def extend(self, deployment_id: str, events: Sequence[LogEvent]) -> int:
        if not events:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            payload = json.dumps(without_seq(event), separators=(",", ":"), ensure_ascii=False)
            pipe.xadd(
                log_stream(deployment_id),
                {STREAM_FIELD: payload},
                id="0-*",
                maxlen=self._max_events,
                approximate=True,
            )
        with _redis_errors("log append"):
            entry_ids = await pipe.execute()
        return _seq_of(entry_ids[-1])

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
                if is_result(event):
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
            # The JSON edge: what the builder wrote is taken as the event shape it promised.
            yield cast(LogEvent, event)

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
