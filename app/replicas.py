"""Which API processes (replicas) are alive: each heartbeats its row; a stale row is a dead one.

Every replica runs the reconcile loop, and each judges only the builds it started itself: it
alone sees a local build's process, and asking another replica's runner about a build it does
not run gives wrong answers. A replica whose heartbeat is older than `dead_after` is dead; one
replica then adopts its builds, under a claim (`app.reconcile`). A clean stop deletes the row, so
its builds are adopted at once.
"""

from __future__ import annotations

import logging
import secrets
import socket
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from app.tables import Replica as ReplicaRow

log = logging.getLogger(__name__)

MIN_DEAD_AFTER = timedelta(seconds=10)
BEATS_TO_DEATH = 10
"""Reconcile passes a replica may miss (a slow pass, a database blip) before it counts as dead."""
FORGET_AFTER = timedelta(days=1)
"""A dead replica's row is kept this long (its host tells who may still see its builds)."""


def dead_after(reconcile_interval: float) -> timedelta:
    """How long a replica may go without a heartbeat before its builds are adopted."""
    return max(MIN_DEAD_AFTER, timedelta(seconds=BEATS_TO_DEATH * reconcile_interval))


class Seen(NamedTuple):
    """Another replica as its row shows it."""

    host: str
    """The machine it runs on: a local build's process is visible only there."""
    alive: bool
    """Its heartbeat is recent enough: it judges its builds itself."""


class Replica:
    """This process as a replica: a random id per start, and the machine it runs on."""

    def __init__(
        self,
        reconcile_interval: float,
        *,
        id: str | None = None,
        host: str | None = None,
    ) -> None:
        self.id = id or secrets.token_hex(8)
        self.host = host or socket.gethostname()
        self.dead_after = dead_after(reconcile_interval)
        self._started_at = datetime.now(UTC)

    async def beat(self) -> None:
        """Say this replica is alive (once per reconcile pass)."""
        now = datetime.now(UTC)
        await ReplicaRow.insert(
            ReplicaRow(id=self.id, host=self.host, heartbeat_at=now, started_at=self._started_at)
        ).on_conflict(target=ReplicaRow.id, action="DO UPDATE", values=[ReplicaRow.heartbeat_at])
        await ReplicaRow.delete().where(ReplicaRow.heartbeat_at < now - FORGET_AFTER)

    async def stop(self) -> None:
        """Leave cleanly: the others adopt this replica's builds at their next pass."""
        try:
            await ReplicaRow.delete().where(ReplicaRow.id == self.id)
        except Exception as exc:
            # Shutting down anyway: the row goes stale, and the builds are adopted a little later.
            log.warning("replica row not removed", extra={"replica": self.id, "error": repr(exc)})
            return
        log.info("replica stopped", extra={"replica": self.id})

    async def on_record(self) -> dict[str, Seen]:
        """Every replica still on record (alive or not), by id: its host, and whether it lives."""
        since = datetime.now(UTC) - self.dead_after
        rows = await ReplicaRow.select(ReplicaRow.id, ReplicaRow.host, ReplicaRow.heartbeat_at)
        return {
            str(row["id"]): Seen(host=str(row["host"]), alive=row["heartbeat_at"] >= since)
            for row in rows
        }
