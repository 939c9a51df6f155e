"""`Retention`, the reconcile loop's retention pass: each run (under the `retention` chore's lease,
so two replicas never do the same work) tears down due previews (closed, deleted, idle), prunes a
batch past the retention policy, and sweeps a batch of unreferenced storage from its cursor.

It runs beside the loop (`kick`), at most every `every`; a storage error backs it off
(`app.retention.chores`), any other failure is logged and the next run tries again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.aliases import AliasAnnouncer
from app.retention import chores, idle, policy
from app.retention.sweeper import sweep
from app.retention.teardown import Doomed, prune
from app.settings_retention import RetentionSettings
from app.storage import Storage, StorageError
from app.tables import Deployment

log = logging.getLogger(__name__)

CHORE = "retention"
BATCH = 200
"""Deployments torn down (and pruned) per run at most."""
EVERY = timedelta(minutes=1)


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RunResult:
    torn_down: int
    idle: int
    pruned: int
    swept: int


class Retention:
    def __init__(
        self,
        storage: Storage,
        announce: AliasAnnouncer,
        settings: RetentionSettings,
        *,
        batch: int = BATCH,
        every: timedelta = EVERY,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.storage = storage
        self.announce = announce
        self.settings = settings
        self.batch = batch
        self.every = every
        self.clock = clock
        self.holder = secrets.token_hex(16)
        self.running: asyncio.Task[RunResult | None] | None = None

    def kick(self) -> None:
        """Start a run beside the caller, unless one is still running."""
        if self.running is None or self.running.done():
            self.running = asyncio.create_task(self.run_logged())

    async def run_logged(self) -> RunResult | None:
        try:
            return await self.run()
        except Exception:
            log.exception("retention run failed")
            return None

    async def run(self) -> RunResult | None:
        """One run if the chore is due and free; None when it was not this replica's turn."""
        now = self.clock()
        cursor = await chores.claim(CHORE, self.holder, now)
        if cursor is None:
            return None
        try:
            result = await self._work(now, cursor)
        except StorageError as exc:
            due = await chores.failed(CHORE, self.holder, now)
            log.warning("retention backs off", extra={"error": str(exc), "until": due.isoformat()})
            return None
        except BaseException:
            await chores.failed(CHORE, self.holder, now)
            raise
        return result

    async def _work(self, now: datetime, cursor: str) -> RunResult:
        torn = await prune(self.storage, self.announce, await due_teardowns(now, self.batch), now)
        idled = await idle.retire_idle(now, self.batch)
        # Idle ones are due at once: torn down in the same run.
        if idled:
            torn += await prune(
                self.storage, self.announce, await due_teardowns(now, self.batch), now
            )
        expired = await policy.expired(self.settings, now, self.batch)
        pruned = await prune(self.storage, self.announce, expired, now)
        swept = await sweep(self.storage, cursor)
        await chores.release(CHORE, self.holder, cursor=swept.cursor, next_run_at=now + self.every)
        result = RunResult(torn, idled, pruned, len(swept.orphans))
        if torn or pruned or swept.orphans:
            log.info("retention run", extra=vars_of(result))
        return result

    async def aclose(self) -> None:
        if self.running is not None and not self.running.done():
            self.running.cancel()
            await asyncio.gather(self.running, return_exceptions=True)


def vars_of(result: RunResult) -> dict[str, int]:
    return {
        "torn_down": result.torn_down,
        "idle": result.idle,
        "pruned": result.pruned,
        "swept": result.swept,
    }


async def due_teardowns(now: datetime, batch: int) -> list[Doomed]:
    """Retired previews whose teardown time has come."""
    rows = await (
        Deployment.select(*Doomed.COLUMNS)
        .where((Deployment.teardown_at <= now) & Deployment.pruned_at.is_null())
        .order_by(Deployment.teardown_at)
        .limit(batch)
    )
    return [Doomed.of(row) for row in rows]
