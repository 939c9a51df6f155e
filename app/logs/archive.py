"""A finished deployment's log in storage (NDJSON), and reading a log wherever it is now.

When a deployment ends its log is archived and the live copy on the bus is dropped.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator

from app.logs.bus import LogBus
from app.storage import ObjectNotFound, Storage
from builder.events import LogEvent
from builder.spec import LOGS_ROOT

ARCHIVE_CONTENT_TYPE = "application/x-ndjson"


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
