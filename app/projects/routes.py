"""The projects API (`POST /project`, `GET /projects`, `GET/PATCH/DELETE /projects/{slug}`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from app.projects import envvars
from app.projects.access import Actor
from app.projects.rules import Protection
from app.projects.service import (
    NewProject,
    ProjectChanges,
    ProjectDetails,
    ProjectService,
)
from app.users.http import provide_user
from app.users.records import CurrentUser
from builder.siteconfig.scalemesh import MAX_TTL_DAYS

# Patterns are documented in the OpenAPI schema only; the service's checks explain a mismatch
# better.
Name = Annotated[
    str,
    msgspec.Meta(max_length=100, extra_json_schema={"extra": {"pattern": "[A-Za-z0-9]"}}),
]
Repo = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=500,
        description="owner/name of a GitHub repository, or an https:// or file:// git URL",
        extra_json_schema={
            "extra": {
                "pattern": r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$"
                r"|^https://[^/@\s]+/\S+$|^file:///\S+$"
            }
        },
    ),
]
Branch = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Directory = Annotated[str, msgspec.Meta(max_length=255)]
Command = Annotated[str, msgspec.Meta(max_length=1000)]
EnvName = Annotated[str, msgspec.Meta(max_length=255)]
EnvValue = Annotated[str, msgspec.Meta(max_length=envvars.MAX_VALUE)]
TtlDays = Annotated[int, msgspec.Meta(ge=1, le=MAX_TTL_DAYS)]
"""A preview idle (no push) this many days is torn down; the same bounds as `previews.ttlDays`."""


class ProjectIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    repo: Repo
    production_branch: Branch = "main"
    root_directory: Directory | None = None
    install_command: Command | None = None
    build_command: Command | None = None
    output_directory: Directory | None = None
    allow_fork_builds: bool = False
    protection: Protection | None = None
    """Who may open deployments: default `previews` for a private repository, else `none`."""
    env: dict[EnvName, EnvValue] = {}
    """Each for production and preview (`PUT /projects/{slug}/env/{name}` scopes one)."""
    preview_ttl_days: TtlDays | None = None
    """Tear a preview down after this many days without a push; null: the repository's
    `previews.ttlDays`, else never."""

    def new_project(self) -> NewProject:
        return NewProject(**msgspec.structs.asdict(self))


class ProjectPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Fields left out stay as they are; `null` resets a build setting to auto-detect.

    `env` merges: each name given is set for production and preview, a name given as null is
    deleted from every scope, others are kept. `PUT /projects/{slug}/env/{name}` sets scopes.
    """

    name: Name | msgspec.UnsetType = msgspec.UNSET
    repo: Repo | msgspec.UnsetType = msgspec.UNSET
    production_branch: Branch | msgspec.UnsetType = msgspec.UNSET
    root_directory: Directory | msgspec.UnsetType | None = msgspec.UNSET
    install_command: Command | msgspec.UnsetType | None = msgspec.UNSET
    build_command: Command | msgspec.UnsetType | None = msgspec.UNSET
    output_directory: Directory | msgspec.UnsetType | None = msgspec.UNSET
    allow_fork_builds: bool | msgspec.UnsetType = msgspec.UNSET
    protection: Protection | msgspec.UnsetType = msgspec.UNSET
    env: dict[EnvName, EnvValue | None] | msgspec.UnsetType = msgspec.UNSET
    preview_ttl_days: TtlDays | msgspec.UnsetType | None = msgspec.UNSET

    def changes(self) -> ProjectChanges:
        given = {
            name: value
            for name, value in msgspec.structs.asdict(self).items()
            if value is not msgspec.UNSET
        }
        return ProjectChanges(**given)


class GitHubStatus(msgspec.Struct):
    installed: bool
    """An installation that is not suspended covers the repository: pushes deploy."""
    install_url: str
    """Where to install the App (or add this repository to it)."""


class PinOut(msgspec.Struct):
    deployment: str
    """The deployment production stays on until someone promotes again."""
    since: datetime
    by: str | None
    """Who rolled back (their email), while that account exists."""


class ProjectOut(msgspec.Struct):
    id: int
    slug: str
    name: str
    repo: str
    """`owner/name` for a GitHub repository, else the git URL."""
    git_url: str
    github_repository: str | None
    production_branch: str
    root_directory: str | None
    install_command: str | None
    build_command: str | None
    output_directory: str | None
    allow_fork_builds: bool
    preview_ttl_days: int | None
    protection: Protection
    """`previews`/`all`: those deployments open only for signed-in users who may see the project."""
    bound: bool
    """Bound to its GitHub repository by a user with push access: pushes build it."""
    role: str
    """What you may do with it: `pull` (see), `push` (also deploy, env vars) or `admin`."""
    env: list[str]
    """Names only: values are write-only."""
    env_scopes: dict[str, list[str]]
    """Each name's scopes: `production`, `preview`, `branch:<name>` (a branch's previews)."""
    production_url: str
    created_at: datetime
    updated_at: datetime
    github: GitHubStatus | None = None
    """For a GitHub repository while the App is configured: is it installed there?"""
    production_pin: PinOut | None = None
    """Set after a rollback: new production builds go ready but production stays on this
    deployment until one is promoted (`DELETE /projects/{slug}/production-pin` unpins)."""

    @classmethod
    def of(cls, details: ProjectDetails) -> ProjectOut:
        project = details.project
        github = details.github
        return cls(
            id=project.id,
            slug=project.slug,
            name=project.name,
            repo=project.repo,
            git_url=project.git_url,
            github_repository=project.github_repository,
            production_branch=project.production_branch,
            root_directory=project.root_directory,
            install_command=project.install_command,
            build_command=project.build_command,
            output_directory=project.output_directory,
            allow_fork_builds=project.allow_fork_builds,
            preview_ttl_days=project.preview_ttl_days,
            protection=project.protection,
            bound=project.github_repository_id is not None,
            role=details.role.name.lower(),
            env=list(details.env),
            env_scopes={
                name: [scope.label for scope in scopes] for name, scopes in details.env.items()
            },
            production_url=details.production_url,
            created_at=project.created_at,
            updated_at=project.updated_at,
            github=None
            if github is None
            else GitHubStatus(installed=github.installed, install_url=github.install_url),
            production_pin=None
            if details.pin is None
            else PinOut(details.pin.deployment_id, details.pin.since, details.pin.by),
        )


def actor(user: CurrentUser) -> Actor:
    """The signed-in user as the domain knows them."""
    return Actor(user.id, is_admin=user.is_admin)


class ProjectController(Controller):
    path = "/"
    dependencies = {"user": Provide(provide_user)}  # noqa: RUF012 - Litestar's own class attribute

    @post("/project", status_code=201, summary="Create a project")
    async def create(
        self,
        data: JSONBody[ProjectIn],
        user: NamedDependency[CurrentUser],
        projects: NamedDependency[ProjectService],
    ) -> ProjectOut:
        return ProjectOut.of(await projects.create(actor(user), data.new_project()))

    @get("/projects", summary="Your projects")
    async def index(
        self, user: NamedDependency[CurrentUser], projects: NamedDependency[ProjectService]
    ) -> list[ProjectOut]:
        return [ProjectOut.of(details) for details in await projects.list_for(user.id)]

    @get("/projects/{slug:str}", summary="One of your projects")
    async def show(
        self,
        slug: FromPath[str],
        user: NamedDependency[CurrentUser],
        projects: NamedDependency[ProjectService],
    ) -> ProjectOut:
        return ProjectOut.of(await projects.get(user.id, slug))

    @patch("/projects/{slug:str}", summary="Change a project's settings or env")
    async def change(
        self,
        slug: FromPath[str],
        data: JSONBody[ProjectPatch],
        user: NamedDependency[CurrentUser],
        projects: NamedDependency[ProjectService],
    ) -> ProjectOut:
        return ProjectOut.of(await projects.update(actor(user), slug, data.changes()))

    @post("/projects/{slug:str}/link", status_code=200, summary="Bind a project to its repository")
    async def link(
        self,
        slug: FromPath[str],
        user: NamedDependency[CurrentUser],
        projects: NamedDependency[ProjectService],
    ) -> ProjectOut:
        """Bind the project to its GitHub repository with your push access there (needs admin
        on the project): pushes build only bound projects."""
        return ProjectOut.of(await projects.link(actor(user), slug))

    @delete("/projects/{slug:str}", status_code=204, summary="Delete a project")
    async def remove(
        self,
        slug: FromPath[str],
        user: NamedDependency[CurrentUser],
        projects: NamedDependency[ProjectService],
    ) -> None:
        await projects.delete(user.id, slug)
