"""Point hostnames at deployments: the atomic deploy, promotion and rollback.

Aliases move only when a deployment is ready. Each alias is one upsert that never takes a
hostname another project owns, and the proxies hear of the moved hostnames after the commit:
told sooner, a proxy would re-read (and cache) the old rows.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from app import hostnames
from app.aliases import AliasAnnouncer
from app.database import AnyEngine, write_transaction
from app.deployments.lifecycle import Target
from app.deployments.records import Publishable
from app.tables import Alias, Deployment

log = logging.getLogger(__name__)


async def point_alias(hostname: str, project_id: int, deployment_id: str) -> None:
    """Point `hostname` at the deployment, unless another project owns that hostname.

    One statement, so two replicas publishing at once cannot trip over each other.
    """
    await Alias.insert(
        Alias(
            hostname=hostname,
            project=project_id,
            deployment=deployment_id,
            updated_at=datetime.now(UTC),
        )
    ).on_conflict(
        target=Alias.hostname,
        action="DO UPDATE",
        values=[Alias.deployment, Alias.updated_at],
        where=Alias.project == project_id,
    )


async def publish(engine: AnyEngine, deployment_id: str, announce: AliasAnnouncer) -> None:
    """Point the deployment's aliases at it, now that it is ready (atomic deploy).

    Its own label always; its branch's label; the production label when it is a production
    deployment no older than the one production points at now (a late old build does not take
    production back).
    """
    row = await (
        Deployment.select(*Publishable.COLUMNS)
        .where(Deployment._meta.primary_key == deployment_id)
        .first()
    )
    if row is None:
        return
    ready = Publishable.of(row)
    moved = [hostnames.deployment_label(ready.slug, ready.id)]
    async with write_transaction(engine):
        await point_alias(moved[0], ready.project_id, ready.id)
        if ready.branch:
            moved.append(hostnames.branch_label(ready.slug, ready.branch))
            await point_alias(moved[-1], ready.project_id, ready.id)
        if ready.target is Target.PRODUCTION and await _newer_than_production(ready):
            moved.append(hostnames.production_label(ready.slug))
            await point_alias(moved[-1], ready.project_id, ready.id)
    await announce(moved)


async def _newer_than_production(ready: Publishable) -> bool:
    current: list[datetime] = await (
        Alias.select(Alias.deployment.created_at)
        .where(Alias.hostname == hostnames.production_label(ready.slug))
        .output(as_list=True)
    )
    return not current or current[0] <= ready.created_at


async def promote(
    engine: AnyEngine, announce: AliasAnnouncer, slug: str, project_id: int, deployment_id: str
) -> None:
    """Point production at a ready deployment (a rollback when it is older)."""
    label = hostnames.production_label(slug)
    async with write_transaction(engine):
        await point_alias(label, project_id, deployment_id)
    await announce([label])
    log.info("deployment promoted", extra={"deployment_id": deployment_id})
