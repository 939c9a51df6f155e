"""Reactions to pushes and pull requests: deploy them, or retire what they deployed.

Each handler is glue: a typed view in, one domain function of `app.deployments.triggers`
called, a one-line outcome out (stored with the delivery). Projects are found by the repository's
id, and a delivery showing the repository under a new name renames their copy of it first (an
installation delivery listing repositories too, beside `app.installations.handlers`). A push
whose commit is no longer its branch's head on GitHub (delivered late, or replayed) builds
nothing.
"""

from __future__ import annotations

from app.deployments import triggers
from app.github import events
from app.github.routing import Router
from app.handler_context import HandlerContext
from app.installations.service import Covered, ensure_covered
from app.projects.binding import follow_rename

router: Router[HandlerContext] = Router()

NOT_INSTALLED = "ignored: the app is not installed (or suspended) there"


@router.on("push", view=events.Push)
async def deploy_pushed_branch(context: HandlerContext, push: events.Push) -> str:
    """See https://docs.github.com/en/webhooks/webhook-events-and-payloads#push."""
    if push.branch is None:
        return f"ignored: {push.ref} is not a branch"
    await follow_rename(push.repository.id, push.repository.full_name)
    covered = await ensure_covered(
        context.engine, context.settings, push.installation, push.repository
    )
    if covered is None:
        return NOT_INSTALLED
    if push.deleted or push.after == events.ZERO_SHA:
        count = await triggers.retire_branch(
            context.engine,
            push.repository.id,
            push.branch,
            context.announce,
            context.settings.retention.ttl_after_close,
        )
        return f"branch {push.branch} deleted: {count} deployments retired"
    message = push.head_commit.message if push.head_commit else ""
    if triggers.skipped(message):
        return "skipped: the commit message asks not to build"
    if not await triggers.new_build_wanted(push.repository.id, push.branch, push.after):
        return "queued 0 deployments"
    if not await _still_head(context, covered, push.branch, push.after):
        return f"ignored: {push.after[:12]} is no longer the head of {push.branch}"
    queued = await triggers.deploy_branch(
        context.engine, push.repository.id, push.branch, push.after, message
    )
    context.pipeline.wake()
    return f"queued {len(queued)} deployments"


@router.on("delete", view=events.Delete)
async def retire_deleted_branch(context: HandlerContext, event: events.Delete) -> str:
    """See https://docs.github.com/en/webhooks/webhook-events-and-payloads#delete: the same as a
    push deleting the branch (GitHub sends both; retiring twice changes nothing)."""
    if event.ref_type != "branch":
        return f"ignored: {event.ref} is a {event.ref_type}, not a branch"
    await follow_rename(event.repository.id, event.repository.full_name)
    if (
        await ensure_covered(context.engine, context.settings, event.installation, event.repository)
        is None
    ):
        return NOT_INSTALLED
    count = await triggers.retire_branch(
        context.engine,
        event.repository.id,
        event.ref,
        context.announce,
        context.settings.retention.ttl_after_close,
    )
    return f"branch {event.ref} deleted: {count} deployments retired"


async def _still_head(context: HandlerContext, covered: Covered, branch: str, sha: str) -> bool:
    """Whether the branch still points at `sha` on GitHub. A push delivered late, or an old one
    replayed, must not build (and make production) a commit the branch has moved past. A
    GitHub error propagates: the delivery is tried again later."""
    if context.github is None:
        return True  # nothing to ask: GitHub was switched off since the delivery was stored
    head = await context.github.branch_head(covered.installation_id, covered.full_name, branch)
    return head == sha


@router.on("pull_request", "opened", "synchronize", "reopened", view=events.PullRequest)
async def deploy_pull_request_preview(context: HandlerContext, event: events.PullRequest) -> str:
    """See https://docs.github.com/en/webhooks/webhook-events-and-payloads#pull_request."""
    await follow_rename(event.repository.id, event.repository.full_name)
    if not await ensure_covered(
        context.engine, context.settings, event.installation, event.repository
    ):
        return NOT_INSTALLED
    head = event.pull_request.head
    queued = await triggers.deploy_pull_request(
        context.engine,
        event.repository.id,
        event.number,
        head.ref,
        head.sha,
        event.pull_request.title,
        from_fork=event.from_fork,
        base=event.pull_request.base.ref,
    )
    if queued:
        context.pipeline.wake()
    return f"queued {len(queued)} deployments for #{event.number}"


@router.on("pull_request", "closed", view=events.PullRequest)
async def tear_down_preview(context: HandlerContext, event: events.PullRequest) -> str:
    """A closed pull request (merged or not) retires its previews."""
    await follow_rename(event.repository.id, event.repository.full_name)
    count = await triggers.retire_pull_request(
        event.repository.id, event.number, context.settings.retention.ttl_after_close
    )
    return f"#{event.number} closed: {count} deployments retired"


@router.on("installation", "created", "new_permissions_accepted", view=events.InstallationEvent)
async def rename_installed(context: HandlerContext, event: events.InstallationEvent) -> str:
    """Bound projects take the names the installation lists their repositories under."""
    return await _follow(event.repositories)


@router.on("installation_repositories", "added", view=events.InstallationRepositories)
async def rename_added(context: HandlerContext, event: events.InstallationRepositories) -> str:
    return await _follow(event.repositories_added)


async def _follow(repositories: list[events.RepositoryRef]) -> str:
    renamed = 0
    for repository in repositories:
        renamed += await follow_rename(repository.id, repository.full_name)
    return f"{renamed} projects renamed"
