"""Run webhook handlers outside the request: an in-process queue of stored, claimed deliveries.

The edge (`app.webhooks.edge`) stores each delivery with a claim (`claimed_until`, a lease of
`CLAIM`) and hands it here. The worker renews the claim, dispatches the delivery to the composed
router and stores the outcome. A handler that fails for now is tried again after a backoff
(`FIRST_RETRY`, doubling, or the wait GitHub asked for); one that fails for good, or
`MAX_ATTEMPTS` times, is a dead letter (`dead_at`) that only an admin's retry runs again. Every
reconcile interval each replica claims the deliveries due (never run, due again, or claimed by a
replica that died) and queues them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from piccolo.custom_types import Combinable

from app.database import write_transaction
from app.github.api import GitHubError
from app.github.routing import Router
from app.github.waits import retry_delay
from app.handler_context import HandlerContext
from app.tables import WebhookDelivery

log = logging.getLogger(__name__)

MAX_OUTCOME = 255
MAX_ATTEMPTS = 10
"""Failed runs before a delivery becomes a dead letter."""
FIRST_RETRY = 10.0
LAST_RETRY = 3600.0
"""Seconds: the backoff doubles from FIRST_RETRY up to this (or waits as GitHub asked)."""
CLAIM = timedelta(seconds=90)
"""How long a replica holds a delivery it runs; longer than any handler takes."""
SWEEP_BATCH = 50

D = WebhookDelivery


def now_utc() -> datetime:
    return datetime.now(UTC)


def permanent(exc: Exception) -> bool:
    """Running the handlers again cannot help: a payload our views cannot read, or a GitHub
    refusal that would be repeated. Anything else (the database, GitHub unavailable, a bug
    fixed by the next release) may pass, and is tried again."""
    if isinstance(exc, msgspec.DecodeError):
        return True
    return isinstance(exc, GitHubError) and exc.permanent


def _unclaimed(now: datetime) -> Combinable:
    return D.claimed_until.is_null() | (D.claimed_until <= now)


def _pending() -> Combinable:
    return D.processed_at.is_null() & D.dead_at.is_null()


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this replica holds: its event, attempts so far and, when read, its body."""

    event: str
    attempts: int
    payload: str | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Claimed:
        return cls(str(row["event"]), int(row["attempts"]), row.get("payload"))


Queued = tuple[str, bytes | None, datetime]
"""A delivery id, its body when the edge had it, and the claim this replica took."""


class DeliveryWorker:
    """Runs handlers for stored deliveries, one at a time, outside the request."""

    def __init__(self, context: HandlerContext, router: Router[HandlerContext]) -> None:
        self.context = context
        self.router = router
        self.now: Callable[[], datetime] = now_utc
        """The clock every claim and backoff is read from (a test may move it)."""
        self._queue: asyncio.Queue[Queued] = asyncio.Queue()
        self.idle = asyncio.Event()
        self.idle.set()

    def claim_for_edge(self) -> datetime:
        """The claim the edge stores with a delivery it hands here."""
        return self.now() + CLAIM

    def submit(self, delivery_id: str, claimed_until: datetime, body: bytes | None = None) -> None:
        """Queue a stored delivery this replica claimed until `claimed_until`; `body` saves
        reading it back."""
        self.idle.clear()
        self._queue.put_nowait((delivery_id, body, claimed_until))

    async def recover(self) -> int:
        """Claim and queue the deliveries due: never run, due again after a failure, or held by
        a replica whose claim ran out. Oldest first, at most `SWEEP_BATCH`; how many."""
        now = self.now()
        due = (
            _pending()
            & _unclaimed(now)
            & (D.next_attempt_at.is_null() | (D.next_attempt_at <= now))
        )
        # Read first: most sweeps find nothing, and a read takes no write lock (SQLite).
        oldest: list[str] = await (
            D.select(D.delivery_id)
            .where(due)
            .order_by(D.received_at)
            .limit(SWEEP_BATCH)
            .output(as_list=True)
        )
        if not oldest:
            return 0
        until = now + CLAIM
        # Conditional: a replica sweeping at the same time takes each delivery or leaves it
        # (PostgreSQL checks `due` again on a row another has just updated).
        claimed = await (
            D.update({D.claimed_until: until})
            .where(due & D.delivery_id.is_in(oldest))
            .returning(D.delivery_id, D.received_at)
        )
        for row in sorted(claimed, key=lambda row: row["received_at"]):
            self.submit(str(row["delivery_id"]), until)
        log.info("deliveries recovered", extra={"count": len(claimed)})
        return len(claimed)

    async def retry(self, delivery_id: str) -> bool:
        """Run a dead letter again, with a fresh count of attempts; whether it was one."""
        until = self.now() + CLAIM
        revived = await (
            D.update(
                {
                    D.dead_at: None,
                    D.attempts: 0,
                    D.next_attempt_at: None,
                    D.claimed_until: until,
                }
            )
            .where((D.delivery_id == delivery_id) & D.dead_at.is_not_null())
            .returning(D.delivery_id)
        )
        if not revived:
            return False
        log.info("dead letter retried", extra={"delivery_id": delivery_id})
        self.submit(delivery_id, until)
        return True

    async def drain(self) -> None:
        """Process everything queued now, in this task (tests, and a loop-less app)."""
        while not self._queue.empty():
            await self._take(*self._queue.get_nowait())
        self.idle.set()

    async def run(self) -> None:
        """Process the queue, and sweep for deliveries due every reconcile interval."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._sweep_forever())
            group.create_task(self._work())

    async def _sweep_forever(self) -> None:
        while True:
            # Only when idle: what is queued here already holds claims, and taking more
            # than this replica can start would keep them from the others.
            if self._queue.empty():
                try:
                    await self.recover()
                except Exception:
                    log.exception("deliveries not recovered")
            await asyncio.sleep(self.context.settings.reconcile_interval)

    async def _work(self) -> None:
        while True:
            queued = await self._queue.get()
            try:
                await self._take(*queued)
            except Exception:
                # The database is away: the delivery stays unprocessed, and a sweep takes it
                # again once its claim has run out. The worker itself must live on.
                log.exception("delivery not processed", extra={"delivery_id": queued[0]})
            if self._queue.empty():
                self.idle.set()

    async def _claim(self, delivery_id: str, claim: datetime, read_body: bool) -> Claimed | None:
        """Renew this replica's claim, unless the delivery is done, dead, or another replica
        took it after ours ran out."""
        now = self.now()
        columns = [D.event, D.attempts, *([D.payload] if read_body else [])]
        rows = await (
            D.update({D.claimed_until: now + CLAIM})
            .where(
                (D.delivery_id == delivery_id)
                & _pending()
                & (_unclaimed(now) | (D.claimed_until == claim))
            )
            .returning(*columns)
        )
        return Claimed.of(rows[0]) if rows else None

    async def _take(self, delivery_id: str, body: bytes | None, claim: datetime) -> None:
        claimed = await self._claim(delivery_id, claim, body is None)
        if claimed is None:
            return
        if claimed.payload is not None:
            body = claimed.payload.encode("utf-8")
        assert body is not None  # noqa: S101 - read above when not given
        try:
            outcome = await self.router.dispatch(self.context, claimed.event, body)
        except Exception as exc:
            await self._failed(delivery_id, claimed, exc)
            return
        async with write_transaction(self.context.engine):
            await D.update(
                {
                    D.processed_at: self.now(),
                    D.outcome: outcome[:MAX_OUTCOME],
                    D.claimed_until: None,
                }
            ).where(D.delivery_id == delivery_id)
        log.info(
            "delivery processed",
            extra={"delivery_id": delivery_id, "event": claimed.event, "outcome": outcome},
        )

    async def _failed(self, delivery_id: str, claimed: Claimed, exc: Exception) -> None:
        attempts = claimed.attempts + 1
        error = f"{type(exc).__name__}: {exc}".strip()[:MAX_OUTCOME]
        dead = permanent(exc) or attempts >= MAX_ATTEMPTS
        now = self.now()
        # At least the wait GitHub asked for: a rate-limited installation's deliveries would
        # otherwise spend their attempts on calls the client refuses, and become dead letters.
        retry_in = timedelta(seconds=retry_delay(attempts, FIRST_RETRY, LAST_RETRY, exc))
        extra = {
            "delivery_id": delivery_id,
            "event": claimed.event,
            "attempts": attempts,
            "error": error,
        }
        if dead:
            log.exception("delivery dead-lettered", extra=extra)
        else:
            log.warning("delivery failed, will retry", extra=extra, exc_info=exc)
        async with write_transaction(self.context.engine):
            await D.update(
                {
                    D.attempts: attempts,
                    D.last_error: error,
                    D.claimed_until: None,
                    D.dead_at: now if dead else None,
                    D.next_attempt_at: None if dead else now + retry_in,
                }
            ).where(D.delivery_id == delivery_id)
