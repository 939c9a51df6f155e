"""The retention policy: which deployments are old enough to prune (Vercel's defaults).

Each class has its own age, a setting (`app.settings_retention`): canceled and skipped 30 days,
errored 90, ready previews 180, ready production 365. Age counts from when the deployment ended
(`finished_at`), or from `created_at` when it never did. Queued and building ones are never
pruned. Always kept, whatever their age: the 10 newest ready production deployments of each
project, and any deployment an alias other than its own label points at (production, a branch
label, and so every custom domain following one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.deployments.lifecycle import DeploymentState, Target
from app.retention.teardown import Doomed
from app.settings_retention import RetentionSettings
from app.tables import Alias, Deployment

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


async def expired(settings: RetentionSettings, now: datetime, batch: int) -> list[Doomed]:
    """Up to `batch` deployments past their class's age and not kept (module docstring)."""
    found: list[Doomed] = []
    for policy in CLASSES:
        age = max_age(settings, policy)
        if age is None:
            continue
        where = (
            Deployment.state.is_in(list(policy.states))
            & Deployment.pruned_at.is_null()
            & _older_than(now - age)
        )
        if policy.target is not None:
            where &= Deployment.target == policy.target
        # Looking past the kept ones, which stay old for ever: never more than a batch of
        # them per project, plus its newest production ones.
        rows = await (
            Deployment.select(*Doomed.COLUMNS)
            .where(where)
            .order_by(Deployment.created_at)
            .limit(batch * 4 + NEWEST_PRODUCTION_KEPT)
        )
        candidates = [Doomed.of(row) for row in rows]
        kept = await _aliased(candidates)
        if policy.target is Target.PRODUCTION:
            kept |= await _newest_production({c.project_id for c in candidates})
        found += [c for c in candidates if c.id not in kept]
        if len(found) >= batch:
            break
    return found[:batch]


async def _aliased(candidates: Iterable[Doomed]) -> set[str]:
    """Those an alias other than their own label points at."""
    by_id = {c.id: c for c in candidates}
    if not by_id:
        return set()
    rows = await Alias.select(Alias.deployment, Alias.hostname).where(
        Alias.deployment.is_in(list(by_id))
    )
    return {
        str(row["deployment"])
        for row in rows
        if row["hostname"] != by_id[str(row["deployment"])].label
    }


async def _newest_production(project_ids: set[int]) -> set[str]:
    kept: set[str] = set()
    for project_id in sorted(project_ids):
        ids = await (
            Deployment.select(Deployment._meta.primary_key)
            .where(
                (Deployment.project == project_id)
                & (Deployment.target == Target.PRODUCTION)
                & (Deployment.state == S.READY)
                & Deployment.pruned_at.is_null()
            )
            .order_by(Deployment.created_at, ascending=False)
            .limit(NEWEST_PRODUCTION_KEPT)
            .output(as_list=True)
        )
        kept.update(str(i) for i in ids)
    return kept
