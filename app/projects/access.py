"""Who may see and change what: the one place projects and deployments are scoped to a user.

A user's role on a project (`Role`) is:
- on a project bound to a GitHub repository (`github_repository_id`), whatever GitHub says the
  user may do with that repository, asked with their own GitHub token: admin → `ADMIN`,
  maintain/push → `PUSH`, triage/pull → `PULL`, cannot see it → `NONE`. This holds for the
  account that created it too: someone who leaves the organisation on GitHub loses the project
  here, and can no longer deploy its private code;
- `ADMIN` on the other projects they own (a password owner keeps full access), and on bound
  ones they own while "Sign in with GitHub" is not configured (nobody could be asked);
- `NONE` otherwise.

GitHub's answer for each (user, repository id) is remembered for at most `TTL_S` seconds, so
access lost on GitHub is lost here within that time. GitHub failing while a non-owner is checked
is `github_unavailable` (503): access is never granted on an error.

Someone whose role is `NONE` gets the same answer as for a missing project, so the slugs of
other people's projects are not revealed; someone who may see a project but not do what they
ask gets `permission_denied`, naming the permission they need on GitHub.

`Access` holds the cache and the clients; the composition root builds one and hands it to every
service that scopes by it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from app.errors import ErrorCode, UserError
from app.github.api import GitHubError
from app.github.oauth_api import GitHubUsersApi, Permission, RepositoryAccess, TokenRejected
from app.projects.records import ProjectRecord
from app.tables import Project

log = logging.getLogger(__name__)

TTL_S = 60.0
"""How long GitHub's answer on one user and one repository is trusted."""
CONCURRENT_CHECKS = 8
"""GitHub calls one listing makes at once."""


class Role(IntEnum):
    """What a user may do with a project; each role may do all the lower ones may."""

    NONE = 0
    PULL = 1
    """See the project, its deployments, logs and previews."""
    PUSH = 2
    """Also deploy, cancel, promote and roll back, and write env vars."""
    ADMIN = 3
    """Also change settings and delete the project."""


ROLE_OF_PERMISSION = {
    Permission.ADMIN: Role.ADMIN,
    Permission.MAINTAIN: Role.PUSH,
    Permission.PUSH: Role.PUSH,
    Permission.TRIAGE: Role.PULL,
    Permission.PULL: Role.PULL,
}
GITHUB_WORD = {Role.PULL: "read", Role.PUSH: "push", Role.ADMIN: "admin"}
"""How GitHub names the permission a role needs."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks the domain to do something: an account, and whether it is this server's admin."""

    id: int
    is_admin: bool = False


class TokenSource(Protocol):
    """Where a user's live GitHub token comes from (`app.auth.user_tokens.UserTokens`)."""

    async def token_for(self, user_id: int) -> str | None: ...


def role_of(permission: Permission) -> Role:
    return ROLE_OF_PERMISSION[permission]


def needs(need: Role, repository: str | None) -> str:
    """The sentence a `permission_denied` carries."""
    where = f"{repository} on GitHub" if repository else "this project's GitHub repository"
    return f"This needs {GITHUB_WORD.get(need, 'read')} access to {where}."


class Access:
    """Roles on projects, from ownership and from GitHub (see the module docstring)."""

    def __init__(
        self,
        tokens: TokenSource | None = None,
        github: GitHubUsersApi | None = None,
        *,
        ttl: float = TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tokens = tokens
        self.github = github
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[tuple[int, int], tuple[float, Role]] = {}

    # --- roles --------------------------------------------------------------------------------

    async def role(self, user_id: int, project: ProjectRecord) -> Role:
        """The user's role on the project; `github_unavailable` when GitHub cannot say."""
        owner = project.owner_id == user_id
        if project.github_repository_id is None or self.github is None:
            return Role.ADMIN if owner else Role.NONE
        return await self.repository_role(user_id, project.github_repository_id)

    async def repository_role(self, user_id: int, repository_id: int) -> Role:
        """GitHub's permission of the user on the repository, as a role, remembered `ttl`."""
        key = (user_id, repository_id)
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        token = await self.token(user_id)
        if token is None:
            return Role.NONE
        found = await self.repository(token, repository_id)
        role = Role.NONE if found is None else role_of(found.permission)
        self._cache[key] = (now + self.ttl, role)
        if len(self._cache) > 10_000:
            self._forget_expired(now)
        return role

    async def token(self, user_id: int) -> str | None:
        """The user's GitHub token; None without a GitHub identity (or with GitHub off)."""
        if self.tokens is None or self.github is None:
            return None
        try:
            return await self.tokens.token_for(user_id)
        except GitHubError as exc:
            raise _unavailable(exc) from None

    async def repository(self, token: str, repository: int | str) -> RepositoryAccess | None:
        """The repository as the token's user sees it; None when they cannot (or the token is
        dead); `github_unavailable` when GitHub fails."""
        if self.github is None:
            return None
        try:
            return await self.github.repository(token, repository)
        except TokenRejected:
            return None
        except GitHubError as exc:
            raise _unavailable(exc) from None

    def _forget_expired(self, now: float) -> None:
        for key in [key for key, (until, _) in self._cache.items() if until <= now]:
            del self._cache[key]

    # --- checks -------------------------------------------------------------------------------

    async def require(self, user_id: int, project: ProjectRecord, need: Role) -> Role:
        """The user's role, if it allows `need`; else `project_not_found` (they may not see it)
        or `permission_denied` (they may see it, not do this)."""
        role = await self.role(user_id, project)
        if role is Role.NONE:
            raise not_found(project.slug)
        if role < need:
            raise UserError(ErrorCode.PERMISSION_DENIED, needs(need, project.github_repository))
        return role

    async def project_for(self, user_id: int, slug: str, need: Role = Role.PULL) -> ProjectRecord:
        """The project named `slug` if the user may do what `need` allows with it."""
        row = await Project.select(*ProjectRecord.COLUMNS).where(Project.slug == slug).first()
        if row is None:
            raise not_found(slug)
        project = ProjectRecord.of(row)
        await self.require(user_id, project, need)
        return project

    async def project_by_id(
        self, user_id: int, project_id: int, need: Role = Role.PULL
    ) -> ProjectRecord:
        row = await (
            Project.select(*ProjectRecord.COLUMNS)
            .where(Project._meta.primary_key == project_id)
            .first()
        )
        if row is None:
            raise UserError(ErrorCode.PROJECT_NOT_FOUND, "There is no such project.")
        project = ProjectRecord.of(row)
        await self.require(user_id, project, need)
        return project

    async def visible(self, user_id: int) -> list[tuple[ProjectRecord, Role]]:
        """The projects the user may see, by slug, with their role: their own unbound ones, and
        the bound projects of repositories GitHub lets them see. A GitHub failure hides those
        (it never grants), without failing the list."""
        rows = await Project.select(*ProjectRecord.COLUMNS).where(
            (Project.owner == user_id) | (Project.github_repository_id.is_not_null())
        )
        projects = [ProjectRecord.of(row) for row in rows]
        # Bound projects follow GitHub for everyone, their creator included (see `role`).
        by_github = self.github is not None
        owned = [
            (p, Role.ADMIN)
            for p in projects
            if p.owner_id == user_id and (p.github_repository_id is None or not by_github)
        ]
        others = [p for p in projects if p.github_repository_id is not None and by_github]
        shared: list[tuple[ProjectRecord, Role]] = []
        if others and await self.token(user_id) is not None:
            roles = await self._roles_of(user_id, {p.github_repository_id or 0 for p in others})
            shared = [
                (p, roles[p.github_repository_id or 0])
                for p in others
                if roles.get(p.github_repository_id or 0, Role.NONE) > Role.NONE
            ]
        return sorted(owned + shared, key=lambda pair: pair[0].slug)

    async def _roles_of(self, user_id: int, repository_ids: Iterable[int]) -> dict[int, Role]:
        gate = asyncio.Semaphore(CONCURRENT_CHECKS)

        async def one(repository_id: int) -> tuple[int, Role]:
            async with gate:
                try:
                    return repository_id, await self.repository_role(user_id, repository_id)
                except UserError as exc:
                    log.warning(
                        "repository access unknown",
                        extra={
                            "user_id": user_id,
                            "repository_id": repository_id,
                            "error": exc.detail,
                        },
                    )
                    return repository_id, Role.NONE

        return dict(await asyncio.gather(*(one(r) for r in repository_ids)))


def not_found(slug: str) -> UserError:
    return UserError(ErrorCode.PROJECT_NOT_FOUND, f"You have no project {slug!r}.")


def _unavailable(exc: GitHubError) -> UserError:
    log.warning("github unavailable for an access check", extra={"error": str(exc)})
    return UserError(
        ErrorCode.GITHUB_UNAVAILABLE,
        "GitHub did not answer whether you may do this; try again in a minute.",
    )
