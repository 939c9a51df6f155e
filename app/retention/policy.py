"""The retention policy: which deployments are old enough to prune (Vercel's defaults).

Each class has its own age, a setting (`app.settings_retention`): canceled and skipped 30 days,
errored 90, ready previews 180, ready production 365. Age counts from when the deployment ended
(`finished_at`), or from `created_at` when it never did. Queued and building ones are never
pruned. Always kept, whatever their age: the 10 newest ready production deployments of each
project, and any deployment an alias other than its own label points at (production, a branch
label, and so every custom domain following one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from piccolo.columns.combination import WhereRaw

from app import hostnames
from app.deployments.lifecycle import DeploymentState, Target
from app.retention.teardown import Doomed
from app.settings_retention import RetentionSettings
from app.tables import Deployment

S = DeploymentState
NEWEST_PRODUCTION_KEPT = 10


@dataclass(frozen=True, slots=True)
class PolicyClass:
    name: str
    states: tuple[DeploymentState, ...]
    target: Target | None
    """Only deployments of this target; None: either."""


CLASSES = (
    PolicyClass("canceled", (S.CANCELLED, S.SKIPPED), None),
    PolicyClass("errored", (S.FAILED,), None),
    PolicyClass("preview", (S.READY,), Target.PREVIEW),
    PolicyClass("production", (S.READY,), Target.PRODUCTION),
)


def max_age(settings: RetentionSettings, policy: PolicyClass) -> timedelta | None:
    ages: dict[str, timedelta | None] = {
        "canceled": settings.canceled,
        "errored": settings.errored,
        "preview": settings.preview,
        "production": settings.production,
    }
    return ages[policy.name]


def _older_than(cutoff: datetime) -> Any:
    return (Deployment.finished_at < cutoff) | (
        Deployment.finished_at.is_null() & (Deployment.created_at < cutoff)
    )


# Raw SQL: Piccolo has no correlated subquery. The tables are named as in `app.tables`.
_NOT_ALIASED = WhereRaw(
    """NOT EXISTS (
        SELECT 1 FROM scalemesh_alias kept
        JOIN scalemesh_project owner ON owner.id = scalemesh_deployment.project
        WHERE kept.deployment = scalemesh_deployment.id
        AND kept.hostname <> owner.slug || '-'
            || substr(replace(CAST(scalemesh_deployment.id AS TEXT), '-', ''), 1, {})
    )""",
    hostnames.SHORT_ID,
)
"""No alias but its own label (`hostnames.deployment_label`) points at it. Slugs are at most
`MAX_SLUG` long, so that label is never cut short by `hostnames.fit`; were it ever, the label
written here would differ from the real one and the deployment would be kept, never pruned."""

_NOT_NEWEST_PRODUCTION = WhereRaw(
    """scalemesh_deployment.created_at < (
        SELECT newer.created_at FROM scalemesh_deployment newer
        WHERE newer.project = scalemesh_deployment.project
        AND newer.target = {} AND newer.state = {} AND newer.pruned_at IS NULL
        ORDER BY newer.created_at DESC LIMIT 1 OFFSET {}
    )""",
    Target.PRODUCTION.value,
    S.READY.value,
    NEWEST_PRODUCTION_KEPT - 1,
)
"""Older than the project's 10th newest ready production deployment (fewer than 10: all kept)."""


async def expired(settings: RetentionSettings, now: datetime, batch: int) -> list[Doomed]:
    """Up to `batch` deployments past their class's age and not kept (module docstring).

    The kept ones are left out by the query itself: however many of them are the oldest,
    they never take the places of younger expired ones."""
    found: list[Doomed] = []
    for policy in CLASSES:
        age = max_age(settings, policy)
        if age is None:
            continue
        where = (
            Deployment.state.is_in(list(policy.states))
            & Deployment.pruned_at.is_null()
            & _older_than(now - age)
            & _NOT_ALIASED
        )
        if policy.target is not None:
            where &= Deployment.target == policy.target
        if policy.target is Target.PRODUCTION:
            where &= _NOT_NEWEST_PRODUCTION
        rows = await (
            Deployment.select(*Doomed.COLUMNS)
            .where(where)
            .order_by(Deployment.created_at)
            .limit(batch - len(found))
        )
        found += [Doomed.of(row) for row in rows]
        if len(found) >= batch:
            break
    return found
