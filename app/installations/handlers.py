"""Reactions to the App being installed, suspended or given repositories (`installation*` events).

See https://docs.github.com/en/webhooks/webhook-events-and-payloads#installation.
"""

from __future__ import annotations

from app.github import events
from app.github.routing import Router
from app.handler_context import HandlerContext
from app.installations import service

router: Router[HandlerContext] = Router()


@router.on("installation", "created", "new_permissions_accepted", view=events.InstallationEvent)
async def remember_installation(context: HandlerContext, event: events.InstallationEvent) -> str:
    await service.record_installation(
        context.engine, context.settings, event.installation, event.repositories
    )
    return f"installed on {event.installation.account.login} ({len(event.repositories)} repos)"


@router.on("installation", "deleted", view=events.InstallationEvent)
async def forget_installation(context: HandlerContext, event: events.InstallationEvent) -> str:
    await service.remove_installation(context.engine, event.installation.id)
    return f"uninstalled from {event.installation.account.login}"


@router.on("installation", "suspend", "unsuspend", view=events.InstallationEvent)
async def suspend_installation(context: HandlerContext, event: events.InstallationEvent) -> str:
    suspended = event.action == "suspend"
    await service.set_suspended(context.engine, event.installation, suspended=suspended)
    return f"{'suspended' if suspended else 'unsuspended'} on {event.installation.account.login}"


@router.on("installation_repositories", "added", "removed", view=events.InstallationRepositories)
async def update_installed_repositories(
    context: HandlerContext, event: events.InstallationRepositories
) -> str:
    """See https://docs.github.com/en/webhooks/webhook-events-and-payloads#installation_repositories."""
    await service.add_repositories(
        context.engine, context.settings, event.installation, event.repositories_added
    )
    await service.remove_repositories(
        context.engine, [repository.id for repository in event.repositories_removed]
    )
    return f"+{len(event.repositories_added)} -{len(event.repositories_removed)} repos"
