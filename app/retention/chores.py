"""The lease, backoff and cursor of a background chore (`app.tables.Chore`), one row per chore.

A replica runs a chore only while it holds its lease (`claim`: a conditional update, so two
replicas never run it at once; a replica that dies leaves it free once the lease has passed).
A failed run (storage unreachable) backs off: 30 s doubling per failure, at most an hour.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.tables import Chore

LEASE = timedelta(minutes=5)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)


async def claim(name: str, holder: str, now: datetime, lease: timedelta = LEASE) -> str | None:
    """Take chore `name` until `now + lease` if it is free and due; its cursor, or None."""
    await Chore.insert(Chore(name=name)).on_conflict(target=Chore.name, action="DO NOTHING")
    free = (Chore.held_until.is_null()) | (Chore.held_until <= now)
    due = (Chore.next_run_at.is_null()) | (Chore.next_run_at <= now)
    rows = await (
        Chore.update({Chore.holder: holder, Chore.held_until: now + lease})
        .where((Chore.name == name) & free & due)
        .returning(Chore.cursor)
    )
    return None if not rows else str(rows[0]["cursor"])


async def release(
    name: str, holder: str, *, cursor: str = "", next_run_at: datetime | None = None
) -> None:
    """The run went well: free the chore, keep where it stopped, run again then."""
    await Chore.update(
        {
            Chore.holder: None,
            Chore.held_until: None,
            Chore.failures: 0,
            Chore.cursor: cursor,
            Chore.next_run_at: next_run_at,
        }
    ).where((Chore.name == name) & (Chore.holder == holder))


async def failed(name: str, holder: str, now: datetime) -> datetime:
    """The run failed: free the chore and back off; return when it is due again."""
    row = await Chore.select(Chore.failures).where(Chore.name == name).first()
    failures = (0 if row is None else int(row["failures"])) + 1
    due: datetime = now + min(FIRST_RETRY * 2 ** min(failures - 1, 16), LONGEST_RETRY)
    await Chore.update(
        {
            Chore.holder: None,
            Chore.held_until: None,
            Chore.failures: failures,
            Chore.next_run_at: due,
        }
    ).where((Chore.name == name) & (Chore.holder == holder))
    return due
