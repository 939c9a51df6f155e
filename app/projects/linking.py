"""Which repository a project may point at, and whether it is bound to it.

A project is *bound* (`github_repository_id` set) when a user with push access on GitHub
created it or re-linked it: only bound projects get installation tokens and push builds. The
rules, for a repository that an installation of the App covers:
- a user with a GitHub identity is checked with their own token: cannot see it →
  `repository_not_found`; below push → `permission_denied`; push, maintain or admin → bound to
  the repository's id;
- a password-only user gets an unbound project.
A repository no installation covers (or any one while no App is configured) stays unbound, and
`file://` repositories (this machine's disk) are for the server's admin only.
"""

from __future__ import annotations

from app.errors import ErrorCode, UserError
from app.installations.service import covered
from app.projects.access import Access, Actor, Role, needs, role_of
from app.projects.rules import RepoSource


def check_source_allowed(actor: Actor, source: RepoSource) -> None:
    """`admin_only` for a `file://` repository unless the actor is the server's admin."""
    if source.git_url.startswith("file://") and not actor.is_admin:
        raise UserError(
            ErrorCode.ADMIN_ONLY,
            "Only the server's admin may build a repository from this machine's disk (file://).",
        )


async def bound_id(access: Access, actor: Actor, source: RepoSource) -> int | None:
    """GitHub's id of the repository to bind the project to, or None to leave it unbound;
    refusals as the module docstring says."""
    check_source_allowed(actor, source)
    full_name = source.github_repository
    if full_name is None or await covered(full_name) is None:
        return None
    token = await access.token(actor.id)
    if token is None:
        return None
    return await checked_repository_id(access, token, full_name)


async def checked_repository_id(access: Access, token: str, full_name: str) -> int:
    """The repository's id, if the token's user has push access to it on GitHub."""
    found = await access.repository(token, full_name)
    if found is None:
        raise UserError(
            ErrorCode.REPOSITORY_NOT_FOUND,
            f"GitHub shows you no repository {full_name}: check the name, or ask for access.",
        )
    if role_of(found.permission) < Role.PUSH:
        raise UserError(ErrorCode.PERMISSION_DENIED, needs(Role.PUSH, full_name))
    return found.id


async def link_id(access: Access, actor: Actor, full_name: str | None) -> int:
    """The id to re-bind a project on `full_name` to, checked with the actor's GitHub token."""
    if full_name is None:
        raise UserError(
            ErrorCode.INVALID_REPO,
            "Only a project on a GitHub repository (owner/name) can be linked to it.",
        )
    token = await access.token(actor.id)
    if token is None:
        raise UserError(
            ErrorCode.GITHUB_LINK_REQUIRED,
            "Sign in with GitHub first: linking checks your access to the repository there.",
        )
    return await checked_repository_id(access, token, full_name)
