"""Projects: create, read, change and delete projects, with their env vars.

Every call is checked against the caller's role on the project (`app.projects.access`): reading
needs pull, env vars push, settings, linking and deleting admin; creating binds the project to
its GitHub repository when the creator may (`app.projects.linking`). Inputs are typed values
(`Actor`, `NewProject`, `ProjectChanges`), checked by `app.projects.rules`; answers are frozen
records (`ProjectDetails`). Nothing here knows of HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from app.aliases import AliasAnnouncer
from app.database import AnyEngine, is_unique_violation, write_transaction
from app.errors import ErrorCode, UserError
from app.installations.service import covered, install_url
from app.logs.archive import archive_key
from app.projects import envvars
from app.projects.access import Access, Actor, Role
from app.projects.envvars import Sealer
from app.projects.linking import bound_id, check_source_allowed, link_id
from app.projects.pins import ProductionPin, read_pin
from app.projects.records import ProjectRecord
from app.projects.removal import delete_build_caches, delete_deployments
from app.projects.rules import (
    MAX_SLUG,
    RESERVED_SLUGS,
    Protection,
    check_branch,
    check_command,
    check_name,
    check_preview_ttl_days,
    check_relative_dir,
    parse_repo,
)
from app.projects.scopes import DEFAULT_SCOPES, Scope
from app.settings import Settings
from app.storage import Storage, StorageError
from app.tables import Alias, Domain, Project
from builder.spec import project_prefix

log = logging.getLogger(__name__)


class Keep(Enum):
    """A field of `ProjectChanges` left out: it stays as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class NewProject:
    name: str
    repo: str
    """owner/name of a GitHub repository, or an https:// or file:// git URL."""
    production_branch: str = "main"
    root_directory: str | None = None
    install_command: str | None = None
    build_command: str | None = None
    output_directory: str | None = None
    allow_fork_builds: bool = False
    protection: Protection | None = None
    """None: `previews` for a private repository, else `none`."""
    env: Mapping[str, str] = field(default_factory=dict)
    preview_ttl_days: int | None = None


@dataclass(frozen=True, slots=True)
class ProjectChanges:
    """What to change; `None` resets a build setting to auto-detect. `env` merges: a name
    given a value is set, a name given None is deleted, others are kept."""

    name: str | Keep = KEEP
    repo: str | Keep = KEEP
    production_branch: str | Keep = KEEP
    root_directory: str | Keep | None = KEEP
    install_command: str | Keep | None = KEEP
    build_command: str | Keep | None = KEEP
    output_directory: str | Keep | None = KEEP
    allow_fork_builds: bool | Keep = KEEP
    protection: Protection | Keep = KEEP
    env: Mapping[str, str | None] = field(default_factory=dict)
    preview_ttl_days: int | Keep | None = KEEP


@dataclass(frozen=True, slots=True)
class GitHubStatus:
    installed: bool
    """An installation that is not suspended covers the repository: pushes deploy."""
    install_url: str
    """Where to install the App (or add this repository to it)."""


@dataclass(frozen=True, slots=True)
class ProjectDetails:
    """A project as the user asking sees it."""

    project: ProjectRecord
    env: Mapping[str, tuple[Scope, ...]]
    """Each env var's name and scopes, by name: values are write-only."""
    production_url: str
    github: GitHubStatus | None
    """For a GitHub repository while the App is configured: is it installed there?"""
    role: Role = Role.ADMIN
    """What the user asking may do with it."""
    pin: ProductionPin | None = None
    """Production pinned by a rollback, or None: it follows pushes."""


async def _default_protection(repository: str | None) -> Protection:
    """Previews of a private repository are for those who may see its code."""
    found = None if repository is None else await covered(repository)
    return Protection.PREVIEWS if found is not None and found.private else Protection.NONE


async def refresh_aliases(project_id: int) -> list[str]:
    """Stamp the project's aliases as changed and return their hostnames to announce.

    The proxies cache what protects each hostname with it: polling proxies notice the stamp,
    listening ones the announcement.
    """
    rows = await (
        Alias.update({Alias.updated_at: datetime.now(UTC)})
        .where(Alias.project == project_id)
        .returning(Alias.hostname)
    )
    return [str(row["hostname"]) for row in rows]


async def slug_taken(slug: str) -> bool:
    return (
        slug in RESERVED_SLUGS
        or await Project.exists().where(Project.slug == slug)
        or await Alias.exists().where(Alias.hostname == slug)
    )


async def free_slug(base: str) -> str:
    """The first of `base-2`, `base-3`, ... that nobody has."""
    for n in range(2, 10_000):
        suffix = f"-{n}"
        candidate = base[: MAX_SLUG - len(suffix)].rstrip("-") + suffix
        if not await slug_taken(candidate):
            return candidate
    raise UserError(  # pragma: no cover - ten thousand projects of one name
        ErrorCode.SLUG_TAKEN, f"slug {base!r} is taken; choose a more distinctive name."
    )


class ProjectService:
    def __init__(
        self,
        settings: Settings,
        engine: AnyEngine,
        sealer: Sealer,
        storage: Storage,
        announce: AliasAnnouncer,
        access: Access,
    ) -> None:
        self.access = access
        self.settings = settings
        self.engine = engine
        self.sealer = sealer
        self.storage = storage
        self.announce = announce

    async def create(self, creator: Actor, new: NewProject) -> ProjectDetails:
        """Create the creator's project; bound to its GitHub repository when they have push
        access there (`app.projects.linking`). Nothing is stored on a refusal."""
        name, slug = check_name(new.name)
        source = parse_repo(new.repo, self.settings)
        values: dict[str, Any] = {
            "name": name,
            "slug": slug,
            "owner": creator.id,
            "git_url": source.git_url,
            "github_repository": source.github_repository,
            "production_branch": check_branch(new.production_branch),
            "root_directory": check_relative_dir("root_directory", new.root_directory),
            "install_command": check_command("install_command", new.install_command),
            "build_command": check_command("build_command", new.build_command),
            "output_directory": check_relative_dir("output_directory", new.output_directory),
            "allow_fork_builds": new.allow_fork_builds,
            "preview_ttl_days": check_preview_ttl_days(new.preview_ttl_days),
            "protection": new.protection or await _default_protection(source.github_repository),
        }
        envvars.check_changes(new.env)
        check_source_allowed(creator, source)
        if await slug_taken(slug):
            raise UserError(
                ErrorCode.SLUG_TAKEN,
                f"The URL name {slug!r} is taken; try the name {await free_slug(slug)!r}.",
            )
        values["github_repository_id"] = await bound_id(self.access, creator, source)
        try:
            async with write_transaction(self.engine):
                rows = await Project.insert(Project(**values)).returning(*ProjectRecord.COLUMNS)
                created = ProjectRecord.of(rows[0])
                await envvars.apply_changes(self.sealer, created.id, new.env)
        except Exception as exc:
            if is_unique_violation(exc):
                free = await free_slug(slug)
                raise UserError(
                    ErrorCode.SLUG_TAKEN,
                    f"The URL name {slug!r} was just taken; try the name {free!r}.",
                ) from None
            raise
        return await self._details(created, dict.fromkeys(sorted(new.env), DEFAULT_SCOPES))

    async def list_for(self, user_id: int) -> list[ProjectDetails]:
        """The projects the user may see (`Access.visible`), by slug."""
        visible = await self.access.visible(user_id)
        env = await envvars.scopes([project.id for project, _ in visible])
        return [await self._details(project, env[project.id], role) for project, role in visible]

    async def get(self, user_id: int, slug: str, need: Role = Role.PULL) -> ProjectDetails:
        project = await self.access.project_for(user_id, slug, need)
        return await self._shown(user_id, project)

    async def update(self, actor: Actor, slug: str, changes: ProjectChanges) -> ProjectDetails:
        """Env vars alone need push access; any other change needs admin. A new `repo` is
        bound again when the actor has push access to it on GitHub, else unbound."""
        settings_changed = any(
            not isinstance(getattr(changes, f.name), Keep)
            for f in fields(ProjectChanges)
            if f.name != "env"
        )
        need = Role.ADMIN if settings_changed else Role.PUSH
        project = await self.access.project_for(actor.id, slug, need)
        values: dict[Any, Any] = {}
        if not isinstance(changes.name, Keep):
            values[Project.name] = check_name(changes.name)[0]
        if not isinstance(changes.repo, Keep):
            source = parse_repo(changes.repo, self.settings)
            values[Project.git_url] = source.git_url
            values[Project.github_repository] = source.github_repository
            values[Project.github_repository_id] = await bound_id(self.access, actor, source)
        if not isinstance(changes.production_branch, Keep):
            values[Project.production_branch] = check_branch(changes.production_branch)
        for name, column, check in (
            ("root_directory", Project.root_directory, check_relative_dir),
            ("output_directory", Project.output_directory, check_relative_dir),
            ("install_command", Project.install_command, check_command),
            ("build_command", Project.build_command, check_command),
        ):
            value = getattr(changes, name)
            if not isinstance(value, Keep):
                values[column] = check(name, value)
        if not isinstance(changes.allow_fork_builds, Keep):
            values[Project.allow_fork_builds] = changes.allow_fork_builds
        if not isinstance(changes.protection, Keep):
            values[Project.protection] = changes.protection
        if not isinstance(changes.preview_ttl_days, Keep):
            values[Project.preview_ttl_days] = check_preview_ttl_days(changes.preview_ttl_days)
        envvars.check_changes(changes.env)
        values[Project.updated_at] = datetime.now(UTC)
        async with write_transaction(self.engine):
            await Project.update(values).where(Project._meta.primary_key == project.id)
            await envvars.apply_changes(self.sealer, project.id, changes.env)
        if not isinstance(changes.protection, Keep) and changes.protection != project.protection:
            await self.announce(await refresh_aliases(project.id))
        return await self._reread(actor.id, project.id)

    async def set_env(
        self, actor: Actor, slug: str, name: str, value: str, scopes: Sequence[Scope] = ()
    ) -> tuple[Scope, ...]:
        """Give env var `name` this value in each scope (production and preview when none is
        given; its other scopes keep theirs); needs push access. Its scopes now."""
        project = await self.access.project_for(actor.id, slug, Role.PUSH)
        async with write_transaction(self.engine):
            await envvars.set_value(self.sealer, project.id, name, value, scopes)
        return (await envvars.scopes([project.id]))[project.id][name]

    async def unset_env(
        self, actor: Actor, slug: str, name: str, scopes: Sequence[Scope] = ()
    ) -> None:
        """Delete env var `name` from these scopes (from all when none is given)."""
        project = await self.access.project_for(actor.id, slug, Role.PUSH)
        async with write_transaction(self.engine):
            gone = await envvars.unset(project.id, name, scopes)
        if not gone:
            where = f" in {', '.join(scope.label for scope in scopes)}" if scopes else ""
            raise UserError(ErrorCode.ENV_NOT_FOUND, f"{slug} has no env var {name}{where}.")

    async def link(self, actor: Actor, slug: str) -> ProjectDetails:
        """Bind the project to its GitHub repository again, with the actor's push access
        there; needs admin on the project."""
        project = await self.access.project_for(actor.id, slug, Role.ADMIN)
        repository_id = await link_id(self.access, actor, project.github_repository)
        await Project.update(
            {Project.github_repository_id: repository_id, Project.updated_at: datetime.now(UTC)}
        ).where(Project._meta.primary_key == project.id)
        return await self._reread(actor.id, project.id)

    async def delete(self, user_id: int, slug: str) -> None:
        """Delete the project's build caches first (refused while storage cannot), then the
        project, its deployments, aliases and domains; tell the proxies once it is done; then
        delete its deployments' files and build logs from storage.

        Proxies listening on Redis do not poll, so they drop the hostnames only when told; told
        before the delete commits, they would read the rows again.
        """
        project = await self.access.project_for(user_id, slug, Role.ADMIN)
        await delete_build_caches(self.storage, project.id)
        hostnames: list[str] = await (
            Alias.select(Alias.hostname).where(Alias.project == project.id).output(as_list=True)
        )
        # Its custom domains go with it (the foreign key cascades): proxies drop them too.
        hostnames += await (
            Domain.select(Domain.name).where(Domain.project == project.id).output(as_list=True)
        )
        deployments = await delete_deployments(project.id)
        await Project.delete().where(Project._meta.primary_key == project.id)
        await self.announce(hostnames)
        if len(deployments) > INLINE_FILE_DELETES:
            # Bounded time: the storage sweeper (`app.retention`) deletes them in the background.
            log.info("project files left to the sweeper", extra={"project_id": project.id})
            return
        try:
            await self.storage.delete_prefix(project_prefix(project.id))
            await self.storage.delete(*(archive_key(str(key)) for key in deployments))
        except StorageError as exc:
            # The project is gone already; files left behind cost space, not correctness.
            log.warning(
                "project files not deleted",
                extra={"project": slug, "project_id": project.id, "error": str(exc)},
            )

    async def _reread(self, user_id: int, project_id: int) -> ProjectDetails:
        """The project as just changed (the one asking may have just unbound it)."""
        row = await (
            Project.select(*ProjectRecord.COLUMNS)
            .where(Project._meta.primary_key == project_id)
            .first()
        )
        if row is None:
            raise UserError(ErrorCode.PROJECT_NOT_FOUND, "The project was deleted meanwhile.")
        return await self._shown(user_id, ProjectRecord.of(row))

    async def _shown(self, user_id: int, project: ProjectRecord) -> ProjectDetails:
        env = (await envvars.scopes([project.id]))[project.id]
        return await self._details(project, env, await self.access.role(user_id, project))

    async def _details(
        self,
        project: ProjectRecord,
        env: Mapping[str, tuple[Scope, ...]],
        role: Role = Role.ADMIN,
    ) -> ProjectDetails:
        return ProjectDetails(
            project=project,
            env=env,
            production_url=self.settings.deployment_url(project.slug),
            github=await self._github_status(project),
            role=role,
            pin=await read_pin(project.id),
        )

    async def _github_status(self, project: ProjectRecord) -> GitHubStatus | None:
        url = install_url(self.settings)
        if url is None or project.github_repository is None:
            return None
        found = await covered(project.github_repository)
        return GitHubStatus(installed=found is not None, install_url=url)


INLINE_FILE_DELETES = 200
"""A project with more deployments than this leaves its files to the storage sweeper."""
