"""GitHub event handlers, registered per event and action with `@on(...)`.

Each handler is glue: read a few fields through a typed view (`app.github.events`), call one
domain function, and return a short outcome that is stored with the delivery. `app.yml`'s
`default_events` must list exactly the events registered here (a test checks).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from app import installations, triggers
from app.aliases import AliasAnnouncer
from app.database import AnyEngine
from app.deployments import Pipeline
from app.github import events
from app.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Context:
    """What handlers may use; built once by the app's lifespan."""

    settings: Settings
    engine: AnyEngine
    pipeline: Pipeline
    announce: AliasAnnouncer


Handler = Callable[[Context, bytes], Awaitable[str]]
_HANDLERS: dict[tuple[str, str | None], Handler] = {}


def on(event: str, *actions: str) -> Callable[[Handler], Handler]:
    """Register a handler for `event` with any of `actions` (every action when none given)."""

    def register(handler: Handler) -> Handler:
        for action in actions or (None,):
            _HANDLERS[(event, action)] = handler
        return handler

    return register


def handled_events() -> frozenset[str]:
    return frozenset(event for event, _ in _HANDLERS)


def find(event: str, action: str | None) -> Handler | None:
    """The handler for this event and action, if we react to it."""
    return _HANDLERS.get((event, action)) or _HANDLERS.get((event, None))


def view(payload: bytes, kind: type[T]) -> T:
    return msgspec.json.decode(payload, type=kind)


def action_of(payload: bytes) -> str | None:
    return view(payload, events.Envelope).action


# --- installations --------------------------------------------------------------------------


@on("installation", "created", "new_permissions_accepted")
async def remember_installation(context: Context, payload: bytes) -> str:
    event = view(payload, events.InstallationEvent)
    await installations.record_installation(
        context.engine, context.settings, event.installation, event.repositories
    )
    return f"installed on {event.installation.account.login} ({len(event.repositories)} repos)"


@on("installation", "deleted")
async def forget_installation(context: Context, payload: bytes) -> str:
    event = view(payload, events.InstallationEvent)
    await installations.remove_installation(context.engine, event.installation.id)
    return f"uninstalled from {event.installation.account.login}"


@on("installation", "suspend", "unsuspend")
async def suspend_installation(context: Context, payload: bytes) -> str:
    event = view(payload, events.InstallationEvent)
    suspended = event.action == "suspend"
    await installations.set_suspended(context.engine, event.installation, suspended=suspended)
    return f"{'suspended' if suspended else 'unsuspended'} on {event.installation.account.login}"


@on("installation_repositories", "added", "removed")
async def update_installed_repositories(context: Context, payload: bytes) -> str:
    event = view(payload, events.InstallationRepositories)
    await installations.add_repositories(
        context.engine, context.settings, event.installation, event.repositories_added
    )
    await installations.remove_repositories(
        context.engine, [repository.id for repository in event.repositories_removed]
    )
    return f"+{len(event.repositories_added)} -{len(event.repositories_removed)} repos"


# --- pushes -------------------------------------------------------------------------------


async def _covered(
    context: Context, installation: events.InstallationRef | None, repository: events.Repository
) -> bool:
    """Whether an active installation covers the repository; remembered first when the
    delivery says something new of it (a first sight, a rename, a new clone URL)."""
    covered = await installations.covered(repository.full_name)
    if installation is None:
        return covered is not None
    known = covered is not None and (
        covered.installation_id,
        covered.clone_url,
        covered.private,
    ) == (installation.id, repository.clone_url, repository.private)
    if not known:
        owner = repository.full_name.split("/", 1)[0]
        await installations.saw_repository(context.engine, installation.id, owner, repository)
        covered = await installations.covered(repository.full_name)
    return covered is not None


@on("push")
async def deploy_pushed_branch(context: Context, payload: bytes) -> str:
    push = view(payload, events.Push)
    if push.branch is None:
        return f"ignored: {push.ref} is not a branch"
    if not await _covered(context, push.installation, push.repository):
        return "ignored: the app is not installed (or suspended) there"
    if push.deleted or push.after == events.ZERO_SHA:
        count = await triggers.retire_branch(
            context.engine, push.repository.full_name, push.branch, context.announce
        )
        return f"branch {push.branch} deleted: {count} deployments retired"
    message = push.head_commit.message if push.head_commit else ""
    if triggers.skipped(message):
        return "skipped: the commit message asks not to build"
    queued = await triggers.deploy_branch(
        context.engine, push.repository.full_name, push.branch, push.after, message
    )
    if queued:
        context.pipeline.wake()
    return f"queued {len(queued)} deployments"


# --- pull requests ------------------------------------------------------------------------


@on("pull_request", "opened", "synchronize", "reopened")
async def deploy_pull_request_preview(context: Context, payload: bytes) -> str:
    event = view(payload, events.PullRequest)
    if not await _covered(context, event.installation, event.repository):
        return "ignored: the app is not installed (or suspended) there"
    head = event.pull_request.head
    queued = await triggers.deploy_pull_request(
        context.engine,
        event.repository.full_name,
        event.number,
        head.ref,
        head.sha,
        event.pull_request.title,
        from_fork=event.from_fork,
    )
    if queued:
        context.pipeline.wake()
    return f"queued {len(queued)} deployments for #{event.number}"


@on("pull_request", "closed")
async def tear_down_preview(context: Context, payload: bytes) -> str:
    event = view(payload, events.PullRequest)
    count = await triggers.retire_pull_request(event.repository.full_name, event.number)
    return f"#{event.number} closed: {count} deployments retired"


async def dispatch(context: Context, event: str, payload: bytes) -> str:
    """Run the handler for this delivery; the outcome is stored with it."""
    handler = find(event, action_of(payload))
    if handler is None:
        return "ignored: not handled"
    return await handler(context, payload)
