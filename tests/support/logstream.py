"""Following a deployment's log over the websocket in process: write events, read frames.

`append` writes as the API does with the events a builder sends (to the app's bus: memory, or
Redis); the readers take frames from Litestar's websocket test session until a count, a line or
the server's close.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import WebSocketTestSession

from app.logs.bus import LogBusError, MemoryLogBus
from builder.events import LogEvent
from tests.support.api import Client, bearer
from tests.support.waiting import WAIT_S

UNKNOWN_ID = "0b7f4bd6-44a1-4d6e-9a53-f1a1a0c3b8f2"


def append(client: Client, bus_kind: str, deployment_id: str, *events: LogEvent) -> None:
    """Write events as the API does with a builder's batch: to its bus, whichever `bus_kind`."""
    bus = client.app.state.services.bus

    async def write() -> None:
        for event in events:
            await bus.append(deployment_id, event)

    client.run(write)


def finish(client: Client, token: str, deployment_id: str) -> None:
    """End the deployment the way the API does: the result is logged, the log archived."""
    response = client.post(f"/deployments/{deployment_id}/cancel", headers=bearer(token))
    assert response.status_code == 200, response.text


def connect(
    client: Client, deployment_id: str, token: str | None = None, query: str = ""
) -> WebSocketTestSession:
    headers = bearer(token) if token else {}
    return client.websocket_connect(f"/deployments/{deployment_id}/logs/ws{query}", headers=headers)


def frame(session: WebSocketTestSession) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(session.receive_text(timeout=WAIT_S))
    assert isinstance(events, list)
    assert events
    return events


def receive_until(session: WebSocketTestSession, count: int) -> list[dict[str, Any]]:
    """Frames until `count` events have come."""
    events: list[dict[str, Any]] = []
    while len(events) < count:
        events.extend(frame(session))
    return events


def read_to_close(session: WebSocketTestSession) -> tuple[list[dict[str, Any]], int]:
    """Every event until the server closes; the close code."""
    events: list[dict[str, Any]] = []
    while True:
        try:
            events.extend(frame(session))
        except WebSocketDisconnect as closed:
            return events, closed.code


def refusal(client: Client, deployment_id: str, **kwargs: Any) -> tuple[int, str]:
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        connect(client, deployment_id, **kwargs) as ws,
    ):
        ws.receive_text(timeout=WAIT_S)
    return closed.value.code, str(closed.value.detail)


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [event["seq"] for event in events]


def receive_until_line(session: WebSocketTestSession) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] != "line":
        events.extend(event for event in frame(session) if event["type"] != "heartbeat")
    return events


class CountingBus(MemoryLogBus):
    """A memory bus that knows how many tails are open."""

    def __init__(self) -> None:
        super().__init__()
        self.open_tails = 0

    async def tail(
        self, deployment_id: str, since: int = 0, *, heartbeat: float = 15.0
    ) -> AsyncGenerator[LogEvent | None, None]:
        self.open_tails += 1
        try:
            async with contextlib.aclosing(
                super().tail(deployment_id, since, heartbeat=heartbeat)
            ) as tail:
                async for event in tail:
                    yield event
        finally:
            self.open_tails -= 1


class BrokenBus(MemoryLogBus):
    """A bus whose tail gives one event, then breaks in a way no retry mends."""

    async def tail(
        self, deployment_id: str, since: int = 0, *, heartbeat: float = 15.0
    ) -> AsyncGenerator[LogEvent | None, None]:
        yield {"type": "line", "seq": since + 1, "text": "before the fall"}
        raise RuntimeError("the tail broke")


class FlakyBus(MemoryLogBus):
    """A bus that fails, as Redis restarting does, its first `failures` appends, reads, tails."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def _fail(self) -> None:
        if self.failures:
            self.failures -= 1
            raise LogBusError("log tail: ConnectionError: gone")

    async def append(self, deployment_id: str, event: LogEvent) -> int:
        self._fail()
        return await super().append(deployment_id, event)

    async def read(self, deployment_id: str, since: int = 0) -> list[LogEvent]:
        self._fail()
        return await super().read(deployment_id, since)

    async def tail(
        self, deployment_id: str, since: int = 0, *, heartbeat: float = 15.0
    ) -> AsyncGenerator[LogEvent | None, None]:
        self._fail()
        async for event in super().tail(deployment_id, since, heartbeat=heartbeat):
            yield event
