"""A finished deployment's log in storage (NDJSON), and reading a log wherever it is now.

When a deployment ends its log is archived and the live copy on the bus is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator

from app.logs.bus import LogBus, LogBusError, is_result
from app.storage import ObjectNotFound, Storage
from builder.events import LogEvent
from builder.spec import LOGS_ROOT

log = logging.getLogger(__name__)

ARCHIVE_CONTENT_TYPE = "application/x-ndjson"
TAIL_RETRY_S = (0.5, 5.0)
"""The first and the longest wait before a failed live tail starts again."""


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
    """Events with seq > since: live from the bus, else from the archive, else [].

    With the bus unreachable, the archive still answers; `LogBusError` only without one.
    """
    try:
        events = await bus.read(deployment_id, since)
    except LogBusError:
        archived = await read_archive(storage, deployment_id)
        if archived is None:
            raise
        return [event for event in archived if event["seq"] > since]
    if events:
        return events
    archived = await read_archive(storage, deployment_id) or []
    return [event for event in archived if event["seq"] > since]


async def tail_log(
    bus: LogBus,
    storage: Storage,
    deployment_id: str,
    since: int = 0,
    *,
    heartbeat: float = 15.0,
    retry: tuple[float, float] = TAIL_RETRY_S,
) -> AsyncGenerator[LogEvent | None, None]:
    """What a log viewer needs: every event after `since` once, live, ending with the result.

    A finished (archived) log is replayed from storage. A live one is tailed on the bus; if it
    gets archived meanwhile (the viewer was slow, or came just as the build ended), the rest
    comes from the archive at the next heartbeat. When the bus fails (Redis restarting), the
    tail starts again where it was, waiting longer each time (`retry`: the first and the
    longest wait), for as long as the viewer stays; the archive is looked for before each try.
    """
    seen = max(0, since)
    wait, longest = retry
    archived = await read_archive(storage, deployment_id)
    while archived is None:
        try:
            async with contextlib.aclosing(
                bus.tail(deployment_id, seen, heartbeat=heartbeat)
            ) as live:
                async for event in live:
                    if event is not None:
                        seen = event["seq"]
                        wait = retry[0]
                        yield event
                        continue
                    archived = await read_archive(storage, deployment_id)
                    if archived is not None:
                        break
                    yield None
                else:
                    return  # the bus delivered the result
        except LogBusError as exc:
            log.warning(
                "log tail failed; trying again",
                extra={"deployment_id": deployment_id, "error": str(exc)},
            )
            yield None
            await asyncio.sleep(wait)
            wait = min(wait * 2, longest)
            archived = await read_archive(storage, deployment_id)
    ended = False
    for event in archived:
        if event["seq"] > seen:
            ended = is_result(event)
            yield event
    if not ended and archived and is_result(archived[-1]) and archived[-1]["seq"] < seen:
        # Redis lost the live log and numbered it again from 1: the viewer has seen seqs the
        # archive never reached, and must still learn how the build ended.
        yield archived[-1]
