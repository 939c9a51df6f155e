"""Queue a build of one commit of a project, cancelling the builds it makes out of date."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from app.database import AnyEngine, write_transaction
from app.deployments.lifecycle import UNFINISHED, DeploymentState, Target
from app.deployments.transitions import move
from app.errors import ErrorCode
from app.projects.records import ProjectRecord
from app.tables import Deployment

log = logging.getLogger(__name__)

MAX_MESSAGE = 2000


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a commit is recorded but will never be built (a fork's pull request)."""

    code: ErrorCode
    reason: str


async def queue_commit(
    engine: AnyEngine,
    project: ProjectRecord,
    *,
    sha: str,
    ref: str,
    branch: str | None,
    pr_number: int | None = None,
    message: str = "",
    from_fork: bool = False,
    refused: Refusal | None = None,
    clear_cache: bool = False,
    base_branch: str | None = None,
) -> str:
    """Queue a build of commit `sha` of the project; return the new deployment's id.

    Production when `branch` is the production branch. Older unfinished deployments of the same
    branch are cancelled: they would be out of date before they were done. A `refused` commit is
    recorded as cancelled with its reason, so the commit and the pull request still say why.
    `clear_cache`: build without restoring the build cache. `base_branch`: the branch its pull
    request merges into, whose build cache it starts from when its own has none.
    """
    target = Target.PRODUCTION if branch == project.production_branch else Target.PREVIEW
    if from_fork:
        target = Target.PREVIEW  # a fork's branch name is theirs, whatever it is called
    deployment_id = str(uuid.uuid4())
    async with write_transaction(engine):
        await Deployment.insert(
            Deployment(
                id=deployment_id,
                project=project.id,
                sha=sha,
                git_ref=ref,
                branch=branch,
                pr_number=pr_number,
                commit_message=message[:MAX_MESSAGE],
                target=target,
                from_fork=from_fork,
                clear_cache=clear_cache,
                base_branch=base_branch,
                state=DeploymentState.QUEUED if refused is None else DeploymentState.CANCELLED,
                error=None if refused is None else refused.reason,
                error_code=None if refused is None else refused.code,
            )
        )
        if branch is not None and refused is None and not from_fork:
            await supersede(project.id, branch, deployment_id)
    log.info(
        "deployment queued" if refused is None else "deployment refused",
        extra={"deployment_id": deployment_id, "project": project.slug, "sha": sha},
    )
    return deployment_id


async def supersede(project_id: int, branch: str, newest_id: str) -> None:
    older: list[object] = await (
        Deployment.select(Deployment._meta.primary_key)
        .where(
            (Deployment.project == project_id)
            & (Deployment.branch == branch)
            & Deployment.state.is_in(list(UNFINISHED))
            & (Deployment._meta.primary_key != newest_id)
        )
        .output(as_list=True)
    )
    for deployment_id in older:
        await move(
            str(deployment_id),
            UNFINISHED,
            DeploymentState.CANCELLED,
            error=f"superseded by {newest_id}",
            error_code=ErrorCode.SUPERSEDED,
        )
