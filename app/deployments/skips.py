"""Skipped builds, app side: the commit a build compares with (`previous_sha`), and the skip
it recorded (`builder.spec.SKIPPED`), read for the reconcile loop."""

from __future__ import annotations

import json
import re

from app.deployments.lifecycle import DeploymentState, Target
from app.storage import ObjectNotFound, Storage
from app.tables import Deployment
from builder.spec import SKIPPED

MAX_SKIP_BYTES = 64 * 1024
"""The builder writes one short reason; anything larger is not read."""
NO_REASON = "the build skipped itself without saying why"
_SHA = re.compile(r"^[0-9a-f]{40}$")


async def skipped_reason(storage: Storage, prefix: str) -> str | None:
    """Why the build at `prefix` decided not to deploy; None when it wrote no skip."""
    key = prefix + SKIPPED
    try:
        if await storage.size(key) > MAX_SKIP_BYTES:
            return NO_REASON
        raw = await storage.get(key)
    except ObjectNotFound:
        return None
    try:
        reason = json.loads(raw).get("reason")
    except (ValueError, AttributeError):  # not JSON, or not an object
        return NO_REASON
    if not isinstance(reason, str) or not reason.strip():
        return NO_REASON
    return reason.strip()


async def previous_sha(project_id: int, target: str, branch: str | None) -> str:
    """The commit a build compares with (`SCALEMESH_PREVIOUS_SHA`), "" when there is none.

    Production: the project's last ready production deployment. A preview: the last ready
    deployment of its branch, else the last ready production one (what the branch forked from).
    """
    ready = (Deployment.project == project_id) & (Deployment.state == DeploymentState.READY)
    tries = [ready & (Deployment.target == Target.PRODUCTION)]
    if target != Target.PRODUCTION and branch:
        tries.insert(0, ready & (Deployment.branch == branch))
    for where in tries:
        row = await (
            Deployment.select(Deployment.sha)
            .where(where)
            .order_by(Deployment.ready_at, ascending=False)
            .order_by(Deployment.created_at, ascending=False)
            .first()
        )
        if row is not None and _SHA.match(str(row["sha"])):
            return str(row["sha"])
    return ""
