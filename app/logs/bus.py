"""The log bus: what every bus offers (`LogBus`), and the in-memory bus for one process.

Events are `builder.events.LogEvent`s. The bus gives each a `seq` (1, 2, 3, ...) when it is
appended; readers ask for events after a seq. `MemoryLogBus` serves one process (`scalemesh
dev`); `app.logs.redis_bus.RedisLogBus` keeps each log in a Redis stream that the builder writes
to directly, from its own machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from builder.events import LogEvent

MAX_EVENTS = 100_000
"""Events kept per live log; past this the oldest go (the builder trims its stream the same)."""


class LogBusError(RuntimeError):
    """The log bus could not be reached or refused the operation."""


# Runtime-checkable: Litestar checks an injected dependency with isinstance() against its
# annotated type, and a plain Protocol refuses isinstance().
@runtime_checkable
class LogBus(Protocol):
    async def append(self, deployment_id: str, event: LogEvent) -> int:
        """Store one event (any `seq` in it is ignored); return the seq it was given."""

    async def extend(self, deployment_id: str, events: Sequence[LogEvent]) -> int:
        """Store several events in order, in one round trip; return the last seq (or 0)."""

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


def is_result(event: LogEvent) -> bool:
    return event.get("type") == "result"


def without_seq(event: LogEvent) -> LogEvent:
    copy = event.copy()
    copy.pop("seq", None)
    return copy


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
        stored = without_seq(event)
        stored["seq"] = seq
        live.events.append(stored)
        # Trim in chunks, like Redis's `MAXLEN ~`: deleting one event per append would move
        # the whole list every time.
        excess = len(live.events) - self._max_events
        if excess > self._max_events // 10:
            del live.events[:excess]
            live.dropped += excess
        async with live.changed:
            live.changed.notify_all()
        return seq

    async def extend(self, deployment_id: str, events: Sequence[LogEvent]) -> int:
        seq = 0
        for event in events:
            seq = await self.append(deployment_id, event)
        return seq

    async def read(self, deployment_id: str, since: int = 0) -> list[LogEvent]:
        live = self._logs.get(deployment_id)
        if live is None:
            return []
        # Copies: a caller adding a field must not change what the next reader gets.
        return [event.copy() for event in live.after(since)]

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
                    fresh = [event.copy() for event in live.after(seq)]
                if not fresh:
                    yield None
                    continue
                for event in fresh:
                    seq = event["seq"]
                    yield event
                    if is_result(event):
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
