"""The GitHub webhook edge: verify, record, acknowledge, hand off (DESIGN §7).

`POST /github/webhooks` checks `X-Hub-Signature-256` over the raw body in constant time, stores
the delivery under its `X-GitHub-Delivery` id and the SHA-256 of its body (each unique, so a
redelivery, or an old body replayed under a new id, is a no-op) and answers at once. A
background worker (`app.webhooks.worker`) then runs the event's handlers and stores the outcome.
Nothing here knows what a deployment is.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency

from app.errors import ErrorCode, UserError
from app.github.routing import NOT_HANDLED
from app.settings import Settings
from app.tables import WebhookDelivery
from app.webhooks.worker import DeliveryWorker

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 25 * 1024 * 1024
"""GitHub caps payloads at 25 MB."""


def _verified_body(settings: Settings, signature: str | None, body: bytes) -> None:
    if settings.github is None:
        raise UserError(
            ErrorCode.GITHUB_NOT_CONFIGURED,
            "GitHub is not configured here: set SCALEMESH_GITHUB_APP_ID, "
            "SCALEMESH_GITHUB_PRIVATE_KEY and SCALEMESH_GITHUB_WEBHOOK_SECRET.",
        )
    # Only the SHA-256 signature: githubkit's verify() would also accept a sha1= value.
    if not signature or not signature.startswith("sha256="):
        raise UserError(ErrorCode.BAD_SIGNATURE, "The X-Hub-Signature-256 header is missing.")
    # Imported here: githubkit takes most of a second to import, which every CLI command
    # would pay; the first delivery pays it once instead.
    from githubkit.webhooks import verify

    if not verify(settings.github.webhook_secret.reveal(), body, signature):
        raise UserError(
            ErrorCode.BAD_SIGNATURE, "The X-Hub-Signature-256 signature does not match the body."
        )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        raise UserError(ErrorCode.BAD_DELIVERY, "The delivery body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise UserError(ErrorCode.BAD_DELIVERY, "The delivery body must be a JSON object.")
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
    deliveries: NamedDependency[DeliveryWorker],
) -> Response[dict[str, str]]:
    body = await request.body()
    _verified_body(settings, request.headers.get("x-hub-signature-256"), body)
    event = request.headers.get("x-github-event", "")
    delivery_id = request.headers.get("x-github-delivery", "")
    if not event or not delivery_id or len(delivery_id) > 64:
        raise UserError(
            ErrorCode.BAD_DELIVERY, "X-GitHub-Event and X-GitHub-Delivery headers are required."
        )
    payload = _json_object(body)
    if event == "ping":
        return Response({"status": "pong"}, status_code=200)
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    handled = deliveries.router.handles(event, action)
    now = datetime.now(UTC)
    claimed_until = deliveries.claim_for_edge()
    stored = (
        await WebhookDelivery.insert(
            WebhookDelivery(
                delivery_id=delivery_id,
                event=event[:64],
                action=action[:64] if action else None,
                payload=body.decode("utf-8", "replace") if handled else "",
                received_at=now,
                processed_at=None if handled else now,
                outcome=None if handled else NOT_HANDLED,
                body_sha256=hashlib.sha256(body).hexdigest(),
                claimed_until=claimed_until if handled else None,
            )
        )
        # Either unique key: the delivery id, or the body (a signed body replayed).
        .on_conflict(action="DO NOTHING")
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
    deliveries.submit(delivery_id, claimed_until, body)
    return Response({"status": "accepted"}, status_code=202)


ROUTES = [receive]
