"""Production pinned by a rollback: promote and unpin move it, publishing respects it.

As Vercel's Instant Rollback does: once production is rolled back, new production builds still
go ready (their own and their branch's hostnames point at them) but production stays where it
was put, until someone promotes again. The rule for a promote is one: production is pinned to
the promoted deployment when a ready production deployment newer than it exists (the next push
would otherwise not have taken it: a rollback, by `scalemesh rollback` or a plain promote of an
older deployment); promoting the newest ready production deployment, or a preview newer than
all of them, unpins. Unpinning promotes the newest ready production deployment.

Every change of the pin, and every publish of a production build, first locks the project's row
(`publish.locked_pin`) in the transaction that moves the production alias: two replicas, or a
promote racing a publish, take their turns, and the second sees what the first committed.

A promote that is to be told to GitHub is recorded in that same transaction (a
`PromotionReport` row), so it is never lost; the reporter tells GitHub and retries
(`app.reporting.promotions`). The promote itself never waits on GitHub.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from piccolo.custom_types import Combinable

from app import hostnames
from app.aliases import AliasAnnouncer
from app.database import AnyEngine, write_transaction
from app.deployments.lifecycle import DeploymentState, Target
from app.deployments.publish import locked_pin, point_alias
from app.tables import Alias, Deployment, Project, PromotionReport

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Promotion:
    """What a promote changed: production's deployment now, the one before, the pin."""

    project_id: int
    deployment_id: str
    replaced_id: str | None
    """The deployment production served before, if another."""
    pinned: bool


async def promote(
    engine: AnyEngine,
    announce: AliasAnnouncer,
    slug: str,
    project_id: int,
    deployment_id: str | None,
    *,
    by: int | None = None,
    report: bool = False,
) -> Promotion | None:
    """Point production at a ready deployment, pinning it there when it is a rollback.

    `deployment_id` None unpins: production goes to the newest ready production deployment,
    chosen under the lock so a build going ready meanwhile cannot pin it again. None when there
    is nowhere to go (the pin is cleared all the same) or another project owns the production
    hostname (nothing changed). `report`: record the move for GitHub (module docstring).
    """
    label = hostnames.production_label(slug)
    async with write_transaction(engine):
        await locked_pin(project_id)
        target = deployment_id or await _newest_ready(project_id)
        if target is None:
            await _set_pin(project_id, None, None)
            return None
        replaced = await _production_now(label)
        pinned = await _newer_ready_exists(project_id, target)
        if not await point_alias(label, project_id, target):
            log.warning(
                "alias taken by another project",
                extra={"deployment_id": target, "hostname": label, "project": slug},
            )
            return None
        await _set_pin(project_id, target if pinned else None, by)
        promotion = Promotion(
            project_id=project_id,
            deployment_id=target,
            replaced_id=None if replaced == target else replaced,
            pinned=pinned,
        )
        if report:
            await PromotionReport.insert(
                PromotionReport(
                    project=project_id,
                    deployment=target,
                    replaced=promotion.replaced_id,
                    pinned=pinned,
                )
            )
    await announce([label])
    log.info("deployment promoted", extra={"deployment_id": target, "pinned": pinned})
    return promotion


async def _set_pin(project_id: int, deployment_id: str | None, by: int | None) -> None:
    pinned = deployment_id is not None
    await Project.update(
        {
            Project.production_pinned_to: deployment_id,
            Project.production_pinned_at: datetime.now(UTC) if pinned else None,
            Project.production_pinned_by: by if pinned else None,
        }
    ).where(Project._meta.primary_key == project_id)


async def _newest_ready(project_id: int) -> str | None:
    """The newest ready production deployment: where production goes when unpinned."""
    rows: list[object] = await (
        Deployment.select(Deployment._meta.primary_key)
        .where(_ready_production(project_id))
        .order_by(Deployment.created_at, ascending=False)
        .limit(1)
        .output(as_list=True)
    )
    return str(rows[0]) if rows else None


async def _production_now(label: str) -> str | None:
    rows: list[object] = await (
        Alias.select(Alias.deployment).where(Alias.hostname == label).output(as_list=True)
    )
    return str(rows[0]) if rows else None


async def _newer_ready_exists(project_id: int, deployment_id: str) -> bool:
    created: list[datetime] = await (
        Deployment.select(Deployment.created_at)
        .where(Deployment._meta.primary_key == deployment_id)
        .output(as_list=True)
    )
    newer = await Deployment.exists().where(
        _ready_production(project_id)
        & (Deployment.created_at > created[0])
        & (Deployment._meta.primary_key != deployment_id)
    )
    return bool(newer)


def _ready_production(project_id: int) -> Combinable:
    return (
        (Deployment.project == project_id)
        & (Deployment.target == Target.PRODUCTION.value)
        & (Deployment.state == DeploymentState.READY.value)
        & (Deployment.retired == False)  # noqa: E712 - SQL, not Python
    )
