"""What a push or a pull request on GitHub deploys, and what closing or deleting one retires.

These take plain values (repository id, branch, sha), never webhook payloads, so the handlers
in `app.deployments.handlers` stay glue and tests can call them directly. A commit is built once per
project: the branch push and the pull request event for the same sha share one deployment.
Only projects bound to the repository's id (`app.projects.binding`) are touched: a project that
merely names the repository is never built, cancelled or retired by its events.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from app import hostnames
from app.aliases import AliasAnnouncer
from app.database import AnyEngine, write_transaction
from app.deployments.lifecycle import UNFINISHED, DeploymentState, Target
from app.deployments.queue import Refusal, queue_commit
from app.deployments.records import Linked
from app.deployments.transitions import move, report_again
from app.errors import ErrorCode
from app.projects.binding import bound_projects
from app.tables import Alias, Deployment

log = logging.getLogger(__name__)

S = DeploymentState
SKIP_MARKERS = ("[skip ci]", "[ci skip]", "[scalemesh skip]")
FORK_REFUSAL = Refusal(
    ErrorCode.FORK_REFUSED,
    "Not built: pull requests from forks are not built, so they never see the project's "
    "secrets. A project owner can allow fork builds in the project settings.",
)


def skipped(message: str) -> bool:
    """The commit message asks not to build it."""
    lowered = message.lower()
    return any(marker in lowered for marker in SKIP_MARKERS)


async def _existing(project_id: int, sha: str, branch: str | None = None) -> Linked | None:
    """A deployment of this commit (on `branch`, when given) that is or will be live."""
    where = (
        (Deployment.project == project_id)
        & (Deployment.sha == sha)
        & Deployment.state.is_in([S.QUEUED, S.BUILDING, S.READY])
        & Deployment.pruned_at.is_null()  # torn down: pushing again builds it anew
    )
    if branch is not None:
        where &= Deployment.branch == branch
    row = await Deployment.select(*Linked.COLUMNS).where(where).first()
    return None if row is None else Linked.of(row)


async def new_build_wanted(repository_id: int, branch: str, sha: str) -> bool:
    """Whether a push of `sha` to `branch` would queue a build for any bound project."""
    existing = [await _existing(p.id, sha, branch) for p in await bound_projects(repository_id)]
    return None in existing


async def deploy_branch(
    engine: AnyEngine, repository_id: int, branch: str, sha: str, message: str
) -> list[str]:
    """Queue a build of `sha` for every project bound to the repository; return their ids.

    Production for a project whose production branch this is, a preview otherwise.
    """
    queued = []
    for project in await bound_projects(repository_id):
        # GitHub sends the same push again under a new delivery id after a re-push.
        if await _existing(project.id, sha, branch) is not None:
            continue
        queued.append(
            await queue_commit(
                engine,
                project,
                sha=sha,
                ref=branch,
                branch=branch,
                message=message,
                base_branch=await _open_base(project.id, branch),
            )
        )
    return queued


async def _open_base(project_id: int, branch: str) -> str | None:
    """The base branch of the open pull request of `branch`, as its newest deployment recorded
    it: a push to that branch builds for that pull request too (its cache falls back alike)."""
    row = await (
        Deployment.select(Deployment.base_branch)
        .where(
            (Deployment.project == project_id)
            & (Deployment.branch == branch)
            & Deployment.pr_number.is_not_null()
            & Deployment.base_branch.is_not_null()
            & (Deployment.retired == False)  # noqa: E712 - SQL, not Python
        )
        .order_by(Deployment.created_at, ascending=False)
        .first()
    )
    return None if row is None else str(row["base_branch"])


async def deploy_pull_request(
    engine: AnyEngine,
    repository_id: int,
    number: int,
    branch: str,
    sha: str,
    title: str,
    *,
    from_fork: bool,
    base: str,
) -> list[str]:
    """Queue a preview of the pull request's head for every bound project; return their ids.

    A commit already deployed by its branch push is not built again; that deployment is tied to
    the pull request instead (and to its `base` branch), so the pull request's comment shows it.
    A fork's pull request is recorded as refused (with the reason) unless the project allows
    fork builds.
    """
    queued = []
    for project in await bound_projects(repository_id):
        existing = await _existing(project.id, sha)
        if existing is not None:
            # Reopened before its teardown: it is live again (and tied to the pull request).
            await Deployment.update(
                {
                    Deployment.pr_number: number,
                    Deployment.base_branch: base,
                    Deployment.retired: False,
                    Deployment.teardown_at: None,
                    **report_again(),
                }
            ).where(
                (Deployment._meta.primary_key == existing.id)
                & (Deployment.pr_number.is_null() | (Deployment.retired == True))  # noqa: E712 - SQL
            )
            continue
        refused = None if not from_fork or project.allow_fork_builds else FORK_REFUSAL
        queued.append(
            await queue_commit(
                engine,
                project,
                sha=sha,
                ref=f"pull/{number}/head" if from_fork else branch,
                branch=None if from_fork else branch,
                pr_number=number,
                message=title,
                from_fork=from_fork,
                refused=refused,
                base_branch=base,
            )
        )
    return queued


async def retire_branch(
    engine: AnyEngine,
    repository_id: int,
    branch: str,
    announce: AliasAnnouncer,
    teardown_after: timedelta = timedelta(0),
) -> int:
    """The branch was deleted: drop its aliases, stop its builds, and mark its deployments
    retired (their GitHub deployments become `inactive`). Returns how many were retired.

    Each deployment keeps its own URL until its previews are torn down, `teardown_after`
    from now (`app.retention`).
    """
    retired = 0
    moved = []
    for project in await bound_projects(repository_id):
        label = hostnames.branch_label(project.slug, branch)
        where = (Deployment.project == project.id) & (Deployment.branch == branch)
        async with write_transaction(engine):
            await Alias.delete().where((Alias.hostname == label) & (Alias.project == project.id))
            rows = await (
                Deployment.update({Deployment.retired: True, **report_again()})
                .where(where & (Deployment.retired == False))  # noqa: E712 - SQL, not Python
                .returning(Deployment._meta.primary_key)
            )
            await schedule_teardown(where, teardown_after)
        moved.append(label)
        retired += len(rows)
        unfinished: list[object] = await (
            Deployment.select(Deployment._meta.primary_key)
            .where(where & Deployment.state.is_in(list(UNFINISHED)))
            .output(as_list=True)
        )
        for deployment_id in unfinished:
            await move(
                str(deployment_id),
                UNFINISHED,
                S.CANCELLED,
                error="the branch was deleted",
                error_code=ErrorCode.BRANCH_DELETED,
            )
    await announce(moved)
    return retired


async def schedule_teardown(where: Any, after: timedelta) -> None:
    """The previews among `where` not yet due are torn down `after` from now."""
    await Deployment.update({Deployment.teardown_at: datetime.now(UTC) + after}).where(
        where
        & (Deployment.target == Target.PREVIEW)
        & Deployment.teardown_at.is_null()
        & Deployment.pruned_at.is_null()
    )


async def retire_pull_request(
    repository_id: int, number: int, teardown_after: timedelta = timedelta(0)
) -> int:
    """The pull request was closed (merged or not): its previews' GitHub deployments become
    `inactive`, and they are torn down `teardown_after` from now (`app.retention`). The merge
    itself deploys through the branch push."""
    retired = 0
    for project in await bound_projects(repository_id):
        await schedule_teardown(
            (Deployment.project == project.id) & (Deployment.pr_number == number), teardown_after
        )
        rows = await (
            Deployment.update({Deployment.retired: True, **report_again()})
            .where(
                (Deployment.project == project.id)
                & (Deployment.pr_number == number)
                & (Deployment.retired == False)  # noqa: E712 - SQL, not Python
            )
            .returning(Deployment._meta.primary_key)
        )
        retired += len(rows)
    return retired
