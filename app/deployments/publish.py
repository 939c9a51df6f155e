"""Point hostnames at deployments: the atomic deploy, promotion and rollback.

Aliases move only when a deployment is ready. Each alias is one upsert that never takes a
hostname another project owns, and the proxies hear of the moved hostnames after the commit:
told sooner, a proxy would re-read (and cache) the old rows. Publishing a ready deployment is a
step of its own (`publish_pending`): set with `ready`, cleared once done, so whichever replica
comes next finishes what a crash interrupted; doing it twice points the same aliases again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from app import hostnames
from app.aliases import AliasAnnouncer
from app.database import AnyEngine, write_transaction
from app.deployments.lifecycle import Target
from app.deployments.records import Publishable
from app.deployments.transitions import report_again
from app.errors import KIND, ErrorCode, ErrorKind
from app.tables import Alias, Deployment, Project

log = logging.getLogger(__name__)

_LOCK = (
    'UPDATE "scalemesh_project" SET "production_pinned_to" = "production_pinned_to" '
    'WHERE "id" = {} RETURNING "production_pinned_to"'
)
"""Writing the row locks it until the transaction ends (PostgreSQL); a writer that waited reads
the pin committed meanwhile. SQLite's write transactions already take turns."""


async def point_alias(hostname: str, project_id: int, deployment_id: str) -> bool:
    """Point `hostname` at the deployment, unless another project owns that hostname: False
    then, and nothing changed.

    One statement, so two replicas publishing at once cannot trip over each other.
    """
    rows = (
        await Alias.insert(
            Alias(
                hostname=hostname,
                project=project_id,
                deployment=deployment_id,
                updated_at=datetime.now(UTC),
            )
        )
        .on_conflict(
            target=Alias.hostname,
            action="DO UPDATE",
            values=[Alias.deployment, Alias.updated_at],
            where=Alias.project == project_id,
        )
        .returning(Alias.hostname)
    )
    return bool(rows)


async def publish(engine: AnyEngine, deployment_id: str, announce: AliasAnnouncer) -> None:
    """Point the deployment's aliases at it, now that it is ready (atomic deploy).

    Its own label always; its branch's label; the production label when it is a production
    deployment no older than the one production points at now (a late old build does not take
    production back) and production is not pinned by a rollback (`app.deployments.pinning`).
    """
    row = await (
        Deployment.select(*Publishable.COLUMNS)
        .where(Deployment._meta.primary_key == deployment_id)
        .first()
    )
    if row is None:
        return
    ready = Publishable.of(row)
    wanted = [hostnames.deployment_label(ready.slug, ready.id)]
    moved: list[str] = []
    taken: list[str] = []
    async with write_transaction(engine):
        if ready.branch:
            wanted.append(hostnames.branch_label(ready.slug, ready.branch))
        if ready.target is Target.PRODUCTION and await _takes_production(ready):
            wanted.append(hostnames.production_label(ready.slug))
        for hostname in wanted:
            pointed = await point_alias(hostname, ready.project_id, ready.id)
            (moved if pointed else taken).append(hostname)
    if moved:
        await announce(moved)
    if taken:
        await _refused(ready, taken)


async def publish_pending(engine: AnyEngine, deployment_id: str, announce: AliasAnnouncer) -> None:
    """Publish a ready deployment still marked `publish_pending`, then clear the mark.

    Cleared only once the proxies were told too, so an announcement that failed is sent again.
    """
    await publish(engine, deployment_id, announce)
    await Deployment.update({Deployment.publish_pending: False}).where(
        Deployment._meta.primary_key == deployment_id
    )
    log.info("deployment published", extra={"deployment_id": deployment_id})


async def _refused(ready: Publishable, taken: list[str]) -> None:
    """Say loudly that hostnames of this deployment belong to another project.

    The deployment stays `ready` (it was built, and what it could take is served): the refusal
    is its outcome (`alias_taken`, ours), so the dashboard, the CLI and GitHub all show it.
    """
    owners = await Alias.select(Alias.hostname, Alias.project.slug.as_alias("owner")).where(
        Alias.hostname.is_in(taken)
    )
    owner_of = {str(row["hostname"]): str(row["owner"]) for row in owners}
    for hostname in taken:
        log.warning(
            "alias taken by another project",
            extra={
                "deployment_id": ready.id,
                "hostname": hostname,
                "project": ready.slug,
                "owner_project": owner_of.get(hostname, "?"),
            },
        )
    names = ", ".join(taken)
    await Deployment.update(
        {
            Deployment.error: f"not published at {names}: another project owns that hostname",
            Deployment.error_code: ErrorCode.ALIAS_TAKEN,
            Deployment.platform_fault: KIND[ErrorCode.ALIAS_TAKEN] is ErrorKind.PLATFORM,
            **report_again(),
        }
    ).where(Deployment._meta.primary_key == ready.id)


async def _takes_production(ready: Publishable) -> bool:
    """Whether production moves to this ready production deployment: not while pinned to
    another one (the project's row stays locked until the alias moved)."""
    pinned = await locked_pin(ready.project_id)
    return pinned in (None, ready.id) and await _newer_than_production(ready)


async def _newer_than_production(ready: Publishable) -> bool:
    current: list[datetime] = await (
        Alias.select(Alias.deployment.created_at)
        .where(Alias.hostname == hostnames.production_label(ready.slug))
        .output(as_list=True)
    )
    return not current or current[0] <= ready.created_at


async def locked_pin(project_id: int) -> str | None:
    """Lock the project's row for the running transaction (its production pin changes and
    production publishes take turns); the deployment production is pinned to, or None."""
    rows = await Project.raw(_LOCK, project_id)
    pinned = rows[0]["production_pinned_to"] if rows else None
    return None if pinned is None else str(pinned)
