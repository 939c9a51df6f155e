"""Run webhook handlers outside the request: an in-process queue of stored deliveries.

The edge (`app.webhooks.edge`) stores each delivery and hands it here. The worker dispatches it
to the composed router and stores the outcome. Deliveries stored but never processed (the
process died) are queued again when the app starts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.database import write_transaction
from app.github.routing import Router
from app.handler_context import HandlerContext
from app.tables import WebhookDelivery

log = logging.getLogger(__name__)

MAX_OUTCOME = 255


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    event: str
    payload: str
    processed_at: datetime | None

    COLUMNS = (WebhookDelivery.event, WebhookDelivery.payload, WebhookDelivery.processed_at)

    @classmethod
    def of(cls, row: dict[str, Any]) -> StoredDelivery:
        return cls(str(row["event"]), str(row["payload"]), row["processed_at"])


class DeliveryWorker:
    """Runs handlers for stored deliveries, one at a time, outside the request."""

    def __init__(self, context: HandlerContext, router: Router[HandlerContext]) -> None:
        self.context = context
        self.router = router
        self._queue: asyncio.Queue[tuple[str, tuple[str, bytes] | None]] = asyncio.Queue()
        self.idle = asyncio.Event()
        self.idle.set()

    def submit(self, delivery_id: str, delivery: tuple[str, bytes] | None = None) -> None:
        """Queue a stored delivery; `delivery` (event, payload) saves reading it back."""
        self.idle.clear()
        self._queue.put_nowait((delivery_id, delivery))

    async def recover(self) -> int:
        """Queue every delivery stored but not processed; return how many."""
        unprocessed: list[str] = await (
            WebhookDelivery.select(WebhookDelivery.delivery_id)
            .where(WebhookDelivery.processed_at.is_null())
            .order_by(WebhookDelivery.received_at)
            .output(as_list=True)
        )
        for delivery_id in unprocessed:
            self.submit(str(delivery_id))
        return len(unprocessed)

    async def drain(self) -> None:
        """Process everything queued now, in this task (tests, and a loop-less app)."""
        while not self._queue.empty():
            await self._take(*self._queue.get_nowait())
        self.idle.set()

    async def run(self) -> None:
        while True:
            delivery_id, delivery = await self._queue.get()
            try:
                await self._take(delivery_id, delivery)
            except Exception:
                # The database is away: the delivery stays unprocessed, and the next start
                # picks it up. The worker itself must live on.
                log.exception("delivery not processed", extra={"delivery_id": delivery_id})
            if self._queue.empty():
                self.idle.set()

    async def _take(self, delivery_id: str, delivery: tuple[str, bytes] | None) -> None:
        if delivery is None:
            await self.process(delivery_id)
        else:
            await self._handle(delivery_id, *delivery)

    async def process(self, delivery_id: str) -> None:
        """Run the handler of a stored delivery, unless it was processed already."""
        row = await (
            WebhookDelivery.select(*StoredDelivery.COLUMNS)
            .where(WebhookDelivery.delivery_id == delivery_id)
            .first()
        )
        stored = None if row is None else StoredDelivery.of(row)
        if stored is None or stored.processed_at is not None:
            return
        await self._handle(delivery_id, stored.event, stored.payload.encode("utf-8"))

    async def _handle(self, delivery_id: str, event: str, payload: bytes) -> None:
        try:
            outcome = await self.router.dispatch(self.context, event, payload)
        except Exception as exc:
            # A payload our views cannot read, or a bug: record it rather than retry for ever.
            log.exception(
                "webhook handler failed", extra={"delivery_id": delivery_id, "event": event}
            )
            outcome = f"failed: {type(exc).__name__}"
        async with write_transaction(self.context.engine):
            await WebhookDelivery.update(
                {
                    WebhookDelivery.processed_at: datetime.now(UTC),
                    WebhookDelivery.outcome: outcome[:MAX_OUTCOME],
                }
            ).where(WebhookDelivery.delivery_id == delivery_id)
        log.info(
            "delivery processed",
            extra={"delivery_id": delivery_id, "event": event, "outcome": outcome},
        )
