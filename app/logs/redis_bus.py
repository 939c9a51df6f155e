"""The Redis log bus: each deployment's log is a Redis stream, kept through Redis outages.

Its client (`app.redis_client`) retries through a short restart. While Redis stays away, the
bus holds what is appended, in order, and writes it when Redis answers again; and it keeps a
journal of what it wrote to each live log, so that a Redis that came back empty (it keeps
nothing on disk) gets those logs back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from app.logs.bus import MAX_EVENTS, LogBusError, is_result
from app.logs.redis_entries import (
    RESTORE_SCRIPT,
    STREAM_FIELD,
    Unreachable,
    payload,
    redis_errors,
    seq_of,
    text,
    xread_entries,
)
from app.logs.redis_journals import JOURNAL_IDLE_S, MAX_JOURNAL_BYTES, Journal, Journals
from app.redis_client import RETRIES, redis_client
from builder.events import LogEvent
from builder.spec import log_stream

log = logging.getLogger(__name__)

_PAGE = 1000
"""Stream entries fetched per XRANGE / XREAD round trip."""


MAX_HELD = 100_000
"""Events held while Redis is unreachable; past this, lines are counted and dropped (results
are always held: a deployment must not lose its ending)."""
MAX_HELD_BYTES = 64 * 1024 * 1024
"""What the held events may take in all: a build's lines may be up to 1 MiB each, so a count
alone would let one build's output fill the API's memory during an outage."""
FLUSH_BACKOFF_S = (0.2, 5.0)
"""The first and the longest wait between tries to write what is held."""
READ_WAIT_S = 10.0
"""How long a read waits for what is held of its log to be written before giving up."""


@dataclass(frozen=True, slots=True)
class _Held:
    deployment_id: str
    payload: str
    result: bool


class RedisLogBus:
    """Each log is a Redis stream (`builder.spec.log_stream`), entry id `0-<seq>`.

    Works with any `redis.asyncio.Redis` client (bytes or decoded responses, RESP2 or RESP3),
    provided its `socket_timeout` is unset or longer than a tail's heartbeat: a tail waits
    in `XREAD BLOCK` that long. Each wait borrows a pooled connection only while it blocks;
    redis-py drops a connection whose read was cancelled, so a closed tail holds nothing.

    While Redis is unreachable, `append` and `extend` hold events (at most `max_held` and
    `max_held_bytes`; lines
    past that are counted, and the log says how many went) and a background task writes them,
    in order, once it answers; `read` waits for its log's held events. Every event this bus
    wrote to a log stays in its journal until `forget`: when a write finds that Redis lost the
    log (the seq Redis gives is not past the journal's last), the journal is put back first.
    Only what this bus wrote comes back; a log another replica writes to alone stays lost.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        max_events: int = MAX_EVENTS,
        owns_client: bool = False,
        max_held: int = MAX_HELD,
        max_held_bytes: int = MAX_HELD_BYTES,
        flush_backoff: tuple[float, float] = FLUSH_BACKOFF_S,
        read_wait_s: float = READ_WAIT_S,
        journal_idle_s: float = JOURNAL_IDLE_S,
        max_journal_bytes: int = MAX_JOURNAL_BYTES,
    ) -> None:
        self._redis = redis
        self._max_events = max_events
        self._owns_client = owns_client
        self._max_held = max_held
        self._max_held_bytes = max_held_bytes
        self._held_bytes = 0
        self._flush_backoff = flush_backoff
        self._read_wait_s = read_wait_s
        self._held: deque[_Held] = deque()
        self._held_logs: Counter[str] = Counter()
        """How many events of each log are held."""
        self._dropped: Counter[str] = Counter()
        self._written = asyncio.Condition()
        self._flusher: asyncio.Task[None] | None = None
        self._journals = Journals(max_events, journal_idle_s, max_journal_bytes)
        self._restore = redis.register_script(RESTORE_SCRIPT)

    @classmethod
    def from_url(
        cls, url: str, *, max_events: int = MAX_EVENTS, retries: int = RETRIES
    ) -> RedisLogBus:
        """A bus with a client of its own (`app.redis_client`), closed by `aclose()`."""
        return cls(redis_client(url, retries=retries), max_events=max_events, owns_client=True)

    async def append(self, deployment_id: str, event: LogEvent) -> int:
        """Store one event; its seq, or 0 when it is held until Redis answers again."""
        return await self._add([_Held(deployment_id, payload(event), is_result(event))])

    async def extend(self, deployment_id: str, events: Sequence[LogEvent]) -> int:
        if not events:
            return 0
        return await self._add(
            [_Held(deployment_id, payload(event), is_result(event)) for event in events]
        )

    async def _add(self, batch: list[_Held]) -> int:
        # Behind anything already held, so that a log keeps its order.
        if not self._held:
            try:
                return await self._write(batch)
            except Unreachable as exc:
                log.warning(
                    "redis unreachable; holding log events",
                    extra={"deployment_id": batch[0].deployment_id, "error": str(exc)},
                )
        self._hold(batch)
        return 0

    def _hold(self, batch: Iterable[_Held]) -> None:
        for item in batch:
            full = len(self._held) >= self._max_held or (
                self._held_bytes + len(item.payload) > self._max_held_bytes
            )
            if full and not item.result:
                self._dropped[item.deployment_id] += 1
                continue
            self._held.append(item)
            self._held_bytes += len(item.payload)
            self._held_logs[item.deployment_id] += 1
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        """Write what is held, oldest first, as soon as Redis answers; then what was dropped."""
        wait, longest = self._flush_backoff
        while self._held or self._dropped:
            if not self._held:
                self._hold(self._drop_notices())
            batch = list(islice(self._held, _PAGE))
            try:
                await self._write(batch)
            except Unreachable:
                await asyncio.sleep(wait)
                wait = min(wait * 2, longest)
                continue
            except LogBusError as exc:
                # Redis answered but refused some: trying again would refuse them again.
                log.error(
                    "held log events refused", extra={"events": len(batch), "error": str(exc)}
                )
            for item in batch:
                self._held.popleft()
                self._held_bytes -= len(item.payload)
                self._held_logs[item.deployment_id] -= 1
                if not self._held_logs[item.deployment_id]:
                    del self._held_logs[item.deployment_id]
            async with self._written:
                self._written.notify_all()
        log.info("held log events written")

    def _drop_notices(self) -> list[_Held]:
        notices = [
            _Held(
                deployment_id,
                payload(
                    {
                        "type": "line",
                        "ts": time.time(),
                        "stream": "system",
                        "text": f"{count} log lines were dropped while Redis was unreachable",
                    }
                ),
                result=False,
            )
            for deployment_id, count in self._dropped.items()
        ]
        self._dropped.clear()
        return notices

    async def _write(self, batch: Sequence[_Held]) -> int:
        """XADD each in one round trip; the last seq. A lost log gets its journal back.

        `LogBusError` when Redis refused any of them (the others are written).
        """
        now = time.monotonic()
        journals = {
            item.deployment_id: self._journals.of(item.deployment_id, now) for item in batch
        }
        if len(journals) == 1:  # the usual case, without the cost of an exit stack
            async with journals[batch[0].deployment_id].lock:
                return await self._write_locked(batch, journals)
        async with contextlib.AsyncExitStack() as held:
            # This process writes to a log one batch at a time (locks taken in one order), so
            # the first write after Redis lost it is the one that sees its seq go back.
            for key in sorted(journals):
                await held.enter_async_context(journals[key].lock)
            return await self._write_locked(batch, journals)

    async def _write_locked(self, batch: Sequence[_Held], journals: dict[str, Journal]) -> int:
        replies: list[Any]
        if len(batch) == 1:
            # One event, one command: a pipeline would cost more than the round trip it saves.
            with redis_errors("log append"):
                replies = [await self._xadd(self._redis, batch[0])]
        else:
            pipe = self._redis.pipeline(transaction=False)
            for item in batch:
                self._xadd(pipe, item)
            with redis_errors("log append"):
                replies = await pipe.execute(raise_on_error=False)
        lost: dict[str, None] = {}
        refused: RedisError | None = None
        for item, entry_id in zip(batch, replies, strict=True):
            if isinstance(entry_id, RedisError):
                refused = entry_id
                continue
            journal = journals[item.deployment_id]
            seq = seq_of(entry_id)
            if item.deployment_id in lost or seq <= journal.last_seq:
                # Redis came back without this log; the restore puts this entry back too.
                lost[item.deployment_id] = None
                continue
            self._journals.keep(journal, seq, item.payload)
        for deployment_id in lost:
            await self._restore_log(journals[deployment_id], deployment_id)
        self._journals.bound()
        if refused is not None:
            raise LogBusError(f"log append: {type(refused).__name__}: {refused}")
        return journals[batch[-1].deployment_id].last_seq

    def _xadd(self, client: Redis | Pipeline, item: _Held) -> Any:
        return client.xadd(
            log_stream(item.deployment_id),
            {STREAM_FIELD: item.payload},
            id="0-*",
            maxlen=self._max_events,
            approximate=True,
        )

    async def _restore_log(self, journal: Journal, deployment_id: str) -> None:
        args = [part for seq, stored in journal.entries for part in (seq, stored)]
        with redis_errors("log restore"):
            added = await self._restore(keys=[log_stream(deployment_id)], args=args)
        for entry_id, added_payload in zip(added[::2], added[1::2], strict=True):
            self._journals.keep(journal, seq_of(entry_id), text(added_payload))
        log.warning(
            "redis lost a log; restored it",
            extra={"deployment_id": deployment_id, "events": len(journal.entries)},
        )

    async def _written_out(self, deployment_id: str) -> None:
        """Return once nothing of this log is held; `LogBusError` after `read_wait_s`."""
        if not self._held_logs[deployment_id]:
            return
        async with self._written:
            try:
                # wait_for, not asyncio.timeout: see `app.logstream._Outbox.put`.
                await asyncio.wait_for(
                    self._written.wait_for(lambda: not self._held_logs[deployment_id]),
                    self._read_wait_s,
                )
            except TimeoutError:
                raise Unreachable(
                    "log read: Redis is unreachable and part of this log waits to be written"
                ) from None

    async def read(self, deployment_id: str, since: int = 0) -> list[LogEvent]:
        await self._written_out(deployment_id)
        key = log_stream(deployment_id)
        events: list[LogEvent] = []
        after = max(0, since)
        while True:
            with redis_errors("log read"):
                entries = (
                    await self._redis.xrange(key, min=f"(0-{after}", max="+", count=_PAGE) or []
                )
            events.extend(self._events(deployment_id, entries))
            if len(entries) < _PAGE:
                return events
            after = seq_of(entries[-1][0])

    async def tail(
        self, deployment_id: str, since: int = 0, *, heartbeat: float = 15.0
    ) -> AsyncGenerator[LogEvent | None, None]:
        key = log_stream(deployment_id)
        block_ms = max(1, round(heartbeat * 1000))
        after = max(0, since)
        while True:
            # One command both replays what is stored after `after` and waits for more.
            with redis_errors("log tail"):
                reply = await self._redis.xread({key: f"0-{after}"}, count=_PAGE, block=block_ms)
            entries = xread_entries(reply)
            if not entries:
                yield None
                continue
            after = seq_of(entries[-1][0])
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
                    extra={"deployment_id": deployment_id, "entry_id": text(entry_id)},
                )
                continue
            event["seq"] = seq_of(entry_id)
            # The JSON edge: what the builder wrote is taken as the event shape it promised.
            yield cast(LogEvent, event)

    async def forget(self, deployment_id: str) -> None:
        self._journals.let_go(deployment_id)
        with redis_errors("log forget"):
            await self._redis.delete(log_stream(deployment_id))

    async def ping(self) -> None:
        with redis_errors("redis ping"):
            await self._redis.ping()

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if self._held:
            log.warning("log events not written", extra={"events": len(self._held)})
        # An injected client belongs to whoever made it (the app's lifespan).
        if self._owns_client:
            await self._redis.aclose()
