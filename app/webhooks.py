"""The GitHub webhook edge: verify, record, acknowledge, hand off (DESIGN §7).

`POST /github/webhooks` checks `X-Hub-Signature-256` over the raw body in constant time, stores
the delivery under its `X-GitHub-Delivery` id (unique, so a redelivery is a no-op) and answers at
once. A background worker then runs the event's handler (`app.handlers`) and stores the outcome.
Deliveries stored but never processed (the process died) are processed when the app starts.
Nothing here knows what a deployment is.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency

from app import handlers
from app.database import AnyEngine, write_transaction
from app.errors import InvalidRequest, ServiceUnavailable, Unauthorized
from app.settings import Settings
from app.tables import WebhookDelivery

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 25 * 1024 * 1024
"""GitHub caps payloads at 25 MB."""
MAX_OUTCOME = 255


class DeliveryWorker:
    """Runs handlers for stored deliveries, one at a time, outside the request."""

    def __init__(self, context: handlers.Context) -> None:
        self.context = context
        self._queue: asyncio.Queue[tuple[str, tuple[str, bytes] | None]] = asyncio.Queue()
        self.idle = asyncio.Event()
        self.idle.set()

    def submit(self, delivery_id: str, delivery: tuple[str, bytes] | None = None) -> None:
        """Queue a stored delivery; `delivery` (event, payload) saves reading it back."""
        self.idle.clear()
        self._queue.put_nowait((delivery_id, delivery))

    async def recover(self) -> int:
        """Queue every delivery stored but not processed; return how many."""
        rows = await (
            WebhookDelivery.select(WebhookDelivery.delivery_id)
            .where(WebhookDelivery.processed_at.is_null())
            .order_by(WebhookDelivery.received_at)
        )
        for row in rows:
            self.submit(str(row["delivery_id"]))
        return len(rows)

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
            WebhookDelivery.select(
                WebhookDelivery.event, WebhookDelivery.payload, WebhookDelivery.processed_at
            )
            .where(WebhookDelivery.delivery_id == delivery_id)
            .first()
        )
        if row is None or row["processed_at"] is not None:
            return
        await self._handle(delivery_id, row["event"], row["payload"].encode("utf-8"))

    async def _handle(self, delivery_id: str, event: str, payload: bytes) -> None:
        try:
            outcome = await handlers.dispatch(self.context, event, payload)
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


def _verified_body(settings: Settings, signature: str | None, body: bytes) -> None:
    if settings.github is None:
        raise ServiceUnavailable(
            "GitHub is not configured here: set SCALEMESH_GITHUB_APP_ID, "
            "SCALEMESH_GITHUB_PRIVATE_KEY and SCALEMESH_GITHUB_WEBHOOK_SECRET."
        )
    # Only the SHA-256 signature: githubkit's verify() would also accept a sha1= value.
    if not signature or not signature.startswith("sha256="):
        raise Unauthorized("The X-Hub-Signature-256 header is missing.")
    # Imported here: githubkit takes most of a second to import, which every CLI command
    # would pay; the first delivery pays it once instead.
    from githubkit.webhooks import verify

    if not verify(settings.github.webhook_secret.reveal(), body, signature):
        raise Unauthorized("The X-Hub-Signature-256 signature does not match the body.")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise InvalidRequest("The delivery body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("The delivery body must be a JSON object.")
    return payload


@post(
    "/github/webhooks",
    status_code=202,
    request_max_body_size=MAX_WEBHOOK_BYTES,
    summary="Receive a GitHub App webhook delivery",
    include_in_schema=False,
)
async def receive(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    engine: NamedDependency[AnyEngine],
    deliveries: NamedDependency[DeliveryWorker],
) -> Response[dict[str, str]]:
    body = await request.body()
    _verified_body(settings, request.headers.get("x-hub-signature-256"), body)
    event = request.headers.get("x-github-event", "")
    delivery_id = request.headers.get("x-github-delivery", "")
    if not event or not delivery_id or len(delivery_id) > 64:
        raise InvalidRequest("X-GitHub-Event and X-GitHub-Delivery headers are required.")
    payload = _json_object(body)
    if event == "ping":
        return Response({"status": "pong"}, status_code=200)
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    handled = handlers.find(event, action) is not None
    now = datetime.now(UTC)
    stored = (
        await WebhookDelivery.insert(
            WebhookDelivery(
                delivery_id=delivery_id,
                event=event[:64],
                action=action[:64] if action else None,
                payload=body.decode("utf-8", "replace") if handled else "",
                received_at=now,
                processed_at=None if handled else now,
                outcome=None if handled else "ignored: not handled",
            )
        )
        .on_conflict(target=WebhookDelivery.delivery_id, action="DO NOTHING")
        .returning(WebhookDelivery.delivery_id)
    )
    if not stored:
        log.info("redelivery ignored", extra={"delivery_id": delivery_id, "event": event})
        return Response({"status": "duplicate"}, status_code=200)
    log.info(
        "delivery received",
        extra={"delivery_id": delivery_id, "event": event, "action": action, "handled": handled},
    )
    if not handled:
        return Response({"status": "ignored"}, status_code=202)
    deliveries.submit(delivery_id, (event, body))
    return Response({"status": "accepted"}, status_code=202)


ROUTES = [receive]
