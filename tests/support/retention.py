"""Deployments of every age and kind for the retention tests, with files in storage."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from app import hostnames
from app.deployments.lifecycle import DeploymentState, Target
from app.logs.archive import archive_key
from app.storage import Storage
from app.tables import Alias, Deployment
from builder.spec import output_prefix


async def aged(
    storage: Storage,
    project_id: int,
    slug: str,
    now: datetime,
    *,
    days: float,
    state: DeploymentState = DeploymentState.READY,
    target: Target = Target.PREVIEW,
    finished: bool = True,
    **values: Any,
) -> str:
    """A deployment made `days` ago (ended then, unless `finished` is false), with its own
    label, an index page and an archived log."""
    deployment_id = str(uuid.uuid4())
    when = now - timedelta(days=days)
    await Deployment.insert(
        Deployment(
            id=deployment_id,
            project=project_id,
            state=state,
            target=target,
            created_at=when,
            finished_at=when if finished else None,
            **values,
        )
    )
    await Alias.insert(
        Alias(
            hostname=hostnames.deployment_label(slug, deployment_id),
            project=project_id,
            deployment=deployment_id,
        )
    )
    await storage.put(output_prefix(project_id, deployment_id) + "index.html", b"<h1>hi")
    await storage.put(archive_key(deployment_id), b"{}\n")
    return deployment_id


async def pruned_ids() -> set[str]:
    rows = await Deployment.select(Deployment.id).where(Deployment.pruned_at.is_not_null())
    return {str(row["id"]) for row in rows}
