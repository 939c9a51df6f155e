"""Log events for the log bus tests: lines, a result, their numbering, a tail read to its end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import anyio

from builder.events import LogEvent
from tests.support.waiting import WAIT_S

NewId = Callable[[], str]
"""Makes a fresh deployment id: a stream of its own on the shared Redis."""

RESULT: LogEvent = {"type": "result", "ts": 1_700_000_100.0, "state": "ready", "error": None}


def line(text: str, ts: float = 1_700_000_000.0) -> LogEvent:
    return {"type": "line", "ts": ts, "stream": "stdout", "text": text, "step": "build"}


def numbered(events: list[LogEvent], first: int = 1) -> list[LogEvent]:
    return [{**event, "seq": seq} for seq, event in enumerate(events, start=first)]


def fresh_deployment_id() -> str:
    return f"test-{uuid4().hex}"


async def collect(tail: AsyncIterator[LogEvent | None]) -> list[LogEvent]:
    """Every event of a tail until it ends (heartbeats left out)."""
    with anyio.fail_after(WAIT_S):
        return [event async for event in tail if event is not None]
