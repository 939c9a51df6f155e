"""A project's production pin as people read it: to which deployment, since when, by whom."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.tables import Project


@dataclass(frozen=True, slots=True)
class ProductionPin:
    """Production stays on `deployment_id` until someone promotes again
    (`app.deployments.pinning`)."""

    deployment_id: str
    since: datetime
    by: str | None
    """The email of who pinned it, while that account exists."""


async def read_pin(project_id: int) -> ProductionPin | None:
    """The project's pin, read fresh (the access cache's records would be a minute late)."""
    row = await (
        Project.select(
            Project.production_pinned_to,
            Project.production_pinned_at,
            Project.production_pinned_by.email.as_alias("by"),
        )
        .where(Project._meta.primary_key == project_id)
        .first()
    )
    if row is None or row["production_pinned_to"] is None:
        return None
    return ProductionPin(
        deployment_id=str(row["production_pinned_to"]),
        since=row["production_pinned_at"],
        by=row["by"],
    )
