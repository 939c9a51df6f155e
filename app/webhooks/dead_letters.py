"""Dead letters: the deliveries given up on, as the dashboard lists them and `/health` counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.tables import WebhookDelivery as D

SHOWN = 100


@dataclass(frozen=True, slots=True)
class DeadLetter:
    delivery_id: str
    event: str
    action: str | None
    received_at: datetime
    dead_at: datetime
    attempts: int
    last_error: str

    COLUMNS = (
        D.delivery_id,
        D.event,
        D.action,
        D.received_at,
        D.dead_at,
        D.attempts,
        D.last_error,
    )

    @classmethod
    def of(cls, row: dict[str, Any]) -> DeadLetter:
        return cls(
            delivery_id=str(row["delivery_id"]),
            event=str(row["event"]),
            action=row["action"],
            received_at=row["received_at"],
            dead_at=row["dead_at"],
            attempts=int(row["attempts"]),
            last_error=str(row["last_error"] or ""),
        )


async def dead_letters() -> list[DeadLetter]:
    """The latest `SHOWN` dead letters, newest first."""
    rows = await (
        D.select(*DeadLetter.COLUMNS)
        .where(D.dead_at.is_not_null())
        .order_by(D.dead_at, ascending=False)
        .limit(SHOWN)
    )
    return [DeadLetter.of(row) for row in rows]


async def count_dead() -> int:
    return int(await D.count().where(D.dead_at.is_not_null()))
