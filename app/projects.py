"""Projects: what to build and how (`POST /project`, `GET/PATCH/DELETE /projects/{slug}`).

A project belongs to the user who created it; anyone else asking for its slug gets a 404, so
slugs of other users' projects are not revealed.
"""

from __future__ import annotations

import logging
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from litestar import delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from app import envvars, hostnames, installations
from app.aliases import AliasAnnouncer
from app.auth import CurrentUser, provide_user
from app.database import AnyEngine, is_unique_violation, write_transaction
from app.envvars import Sealer
from app.errors import Conflict, InvalidRequest, NotFound
from app.installations import github_web_url
from app.logs import archive_key
from app.refs import is_ref_name
from app.settings import Runner, Settings
from app.storage import Storage, StorageError
from app.tables import Alias, Deployment, Project
from builder.spec import project_prefix

log = logging.getLogger(__name__)

MAX_SLUG = 48
# Hostnames the platform itself may want under the root domain.
RESERVED_SLUGS = frozenset({"api", "app", "www", "admin", "dashboard", "static", "assets", "mail"})
_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_REPO_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


# Patterns are documented in the OpenAPI schema only; the checks below explain a mismatch better.
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


class ProjectIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    repo: Repo
    production_branch: Branch = "main"
    root_directory: Directory | None = None
    install_command: Command | None = None
    build_command: Command | None = None
    output_directory: Directory | None = None
    allow_fork_builds: bool = False
    env: dict[EnvName, EnvValue] = {}


class ProjectPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Fields left out stay as they are; `null` resets a build setting to auto-detect.

    `env` merges: each name given is set, a name given as null is deleted, others are kept.
    """

    name: Name | msgspec.UnsetType = msgspec.UNSET
    repo: Repo | msgspec.UnsetType = msgspec.UNSET
    production_branch: Branch | msgspec.UnsetType = msgspec.UNSET
    root_directory: Directory | msgspec.UnsetType | None = msgspec.UNSET
    install_command: Command | msgspec.UnsetType | None = msgspec.UNSET
    build_command: Command | msgspec.UnsetType | None = msgspec.UNSET
    output_directory: Directory | msgspec.UnsetType | None = msgspec.UNSET
    allow_fork_builds: bool | msgspec.UnsetType = msgspec.UNSET
    env: dict[EnvName, EnvValue | None] | msgspec.UnsetType = msgspec.UNSET


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
    env: list[str]
    """Names only: values are write-only."""
    production_url: str
    created_at: datetime
    updated_at: datetime
    github: GitHubStatus | None = None
    """For a GitHub repository while the App is configured: is it installed there?"""


class GitHubStatus(msgspec.Struct):
    installed: bool
    """An installation that is not suspended covers the repository: pushes deploy."""
    install_url: str
    """Where to install the App (or add this repository to it)."""


class RepoSource(msgspec.Struct, frozen=True):
    git_url: str
    github_repository: str | None


# --- rules -------------------------------------------------------------------------------


def slugify(name: str) -> str:
    """A DNS-label-safe slug: lowercase ASCII letters, digits and single hyphens."""
    return hostnames.slugify(name, limit=MAX_SLUG)


def check_name(raw: str) -> tuple[str, str]:
    name = raw.strip()
    if not name or len(name) > 100:
        raise InvalidRequest("name must be 1 to 100 characters long.")
    slug = slugify(name)
    if not slug:
        raise InvalidRequest(f"name {raw!r} needs at least one letter or digit to make a URL from.")
    return name, slug


def parse_repo(raw: str, settings: Settings) -> RepoSource:
    """`owner/name` (a GitHub repository) or a git URL the builder can clone."""
    value = raw.strip()
    if not value:
        raise InvalidRequest("repo is required: owner/name for GitHub, or a git URL.")
    if re.match(r"^[\w.-]+@[\w.-]+:", value) or value.startswith("ssh://"):
        raise InvalidRequest(
            "SSH URLs are not supported: use the https:// URL, "
            "or owner/name for a GitHub repository."
        )
    if "://" not in value:
        return _github_repo(value, settings)
    if any(ord(c) < 0x20 or c.isspace() for c in value):
        raise InvalidRequest("the repo URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise InvalidRequest(f"repo {value!r} is not a valid URL.") from None
    if parts.scheme == "file":
        return _file_repo(parts.path, parts.netloc, settings)
    if parts.scheme == "http":
        raise InvalidRequest("plain http:// git URLs are not supported: use https://.")
    if parts.scheme != "https" or not host:
        raise InvalidRequest(
            f"repo {value!r} is not owner/name or a git URL (https:// or file://)."
        )
    if parts.username or parts.password:
        raise InvalidRequest(
            "don't put credentials in the repo URL; private GitHub repositories are "
            "cloned with the GitHub App's token."
        )
    if parts.query or parts.fragment:
        raise InvalidRequest("the repo URL must not have a ?query or #fragment.")
    github_host = urlsplit(github_web_url(settings)).hostname
    path = parts.path.strip("/").removesuffix(".git")
    if host == github_host and path.count("/") == 1:
        return _github_repo(path, settings)
    if not path:
        raise InvalidRequest(f"repo URL {value!r} has no repository path.")
    return RepoSource(git_url=value, github_repository=None)


def _github_repo(value: str, settings: Settings) -> RepoSource:
    owner, _, name = value.partition("/")
    name = name.removesuffix(".git")
    if not _OWNER.match(owner) or not _REPO_NAME.match(name) or name in (".", ".."):
        raise InvalidRequest(
            f"repo {value!r} is not owner/name or a git URL (https:// or file://)."
        )
    full_name = f"{owner}/{name}"
    return RepoSource(
        git_url=f"{github_web_url(settings)}/{full_name}.git", github_repository=full_name
    )


def _file_repo(path: str, host: str, settings: Settings) -> RepoSource:
    if settings.runner is not Runner.LOCAL:
        raise InvalidRequest(
            "file:// repositories only work with the local runner; use an https:// URL."
        )
    if host not in ("", "localhost") or not path.startswith("/"):
        raise InvalidRequest("a file:// URL needs an absolute path: file:///path/to/repo.")
    try:
        found = Path(path).exists()
    except OSError:  # e.g. a name longer than the filesystem allows
        found = False
    if not found:
        raise InvalidRequest(f"there is no git repository at {path}.")
    return RepoSource(git_url=f"file://{path}", github_repository=None)


def check_branch(raw: str) -> str:
    branch = raw.strip().removeprefix("refs/heads/")
    if not is_ref_name(branch):
        raise InvalidRequest(f"production_branch {raw!r} is not a valid git branch name.")
    return branch


def check_relative_dir(field: str, raw: str | None) -> str | None:
    if raw is None:
        return None
    value = raw.strip()
    if value in ("", ".", "./"):
        return None
    path = PurePosixPath(value)
    if (
        path.is_absolute()
        or ".." in path.parts
        or "\\" in value
        or "\x00" in value
        or len(value) > 255
    ):
        raise InvalidRequest(
            f"{field} must be a path inside the repository, like 'site' or 'apps/web'."
        )
    return str(path)


def check_command(field: str, raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if len(value) > 1000 or "\x00" in value or "\n" in value:
        raise InvalidRequest(f"{field} must be one line of at most 1000 characters.")
    try:
        shlex.split(value)
    except ValueError as exc:
        raise InvalidRequest(f"{field} cannot be split into arguments: {exc}.") from None
    return value


# --- storage ------------------------------------------------------------------------------


async def _github_status(row: dict[str, Any], settings: Settings) -> GitHubStatus | None:
    url = installations.install_url(settings)
    if url is None or row["github_repository"] is None:
        return None
    covered = await installations.covered(row["github_repository"])
    return GitHubStatus(installed=covered is not None, install_url=url)


async def _out(row: dict[str, Any], env_names: list[str], settings: Settings) -> ProjectOut:
    github_repository = row["github_repository"]
    return ProjectOut(
        id=int(row["id"]),
        slug=str(row["slug"]),
        name=str(row["name"]),
        repo=github_repository or row["git_url"],
        git_url=row["git_url"],
        github_repository=github_repository,
        production_branch=row["production_branch"],
        root_directory=row["root_directory"],
        install_command=row["install_command"],
        build_command=row["build_command"],
        output_directory=row["output_directory"],
        allow_fork_builds=bool(row["allow_fork_builds"]),
        env=env_names,
        production_url=settings.deployment_url(str(row["slug"])),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        github=await _github_status(row, settings),
    )


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
    raise Conflict(f"slug {base!r} is taken; choose a more distinctive name.")  # pragma: no cover


async def _row(owner_id: int, slug: str) -> dict[str, Any]:
    row = await Project.select().where((Project.slug == slug) & (Project.owner == owner_id)).first()
    if row is None:
        raise NotFound(f"You have no project {slug!r}.")
    return row


async def create_project(
    engine: AnyEngine, sealer: Sealer, settings: Settings, owner_id: int, data: ProjectIn
) -> ProjectOut:
    name, slug = check_name(data.name)
    source = parse_repo(data.repo, settings)
    values: dict[str, Any] = {
        "name": name,
        "slug": slug,
        "owner": owner_id,
        "git_url": source.git_url,
        "github_repository": source.github_repository,
        "production_branch": check_branch(data.production_branch),
        "root_directory": check_relative_dir("root_directory", data.root_directory),
        "install_command": check_command("install_command", data.install_command),
        "build_command": check_command("build_command", data.build_command),
        "output_directory": check_relative_dir("output_directory", data.output_directory),
        "allow_fork_builds": data.allow_fork_builds,
    }
    envvars.check_changes(data.env)
    if await slug_taken(slug):
        raise Conflict(f"The URL name {slug!r} is taken; try the name {await free_slug(slug)!r}.")
    try:
        async with write_transaction(engine):
            rows = await Project.insert(Project(**values))
            await envvars.apply_changes(sealer, int(rows[0]["id"]), data.env)
    except Exception as exc:
        if is_unique_violation(exc):
            raise Conflict(
                f"The URL name {slug!r} was just taken; try the name {await free_slug(slug)!r}."
            ) from None
        raise
    return await _out(await _row(owner_id, slug), sorted(data.env), settings)


async def list_projects(owner_id: int, settings: Settings) -> list[ProjectOut]:
    rows = await Project.select().where(Project.owner == owner_id).order_by(Project.slug)
    env_names = await envvars.names([int(row["id"]) for row in rows])
    return [await _out(row, env_names[int(row["id"])], settings) for row in rows]


async def get_project(owner_id: int, slug: str, settings: Settings) -> ProjectOut:
    row = await _row(owner_id, slug)
    return await _out(row, (await envvars.names([int(row["id"])]))[int(row["id"])], settings)


async def update_project(
    engine: AnyEngine,
    sealer: Sealer,
    settings: Settings,
    owner_id: int,
    slug: str,
    data: ProjectPatch,
) -> ProjectOut:
    row = await _row(owner_id, slug)
    values: dict[Any, Any] = {}
    if not isinstance(data.name, msgspec.UnsetType):
        values[Project.name] = check_name(data.name)[0]
    if not isinstance(data.repo, msgspec.UnsetType):
        source = parse_repo(data.repo, settings)
        values[Project.git_url] = source.git_url
        values[Project.github_repository] = source.github_repository
    if not isinstance(data.production_branch, msgspec.UnsetType):
        values[Project.production_branch] = check_branch(data.production_branch)
    for field, column, check in (
        ("root_directory", Project.root_directory, check_relative_dir),
        ("output_directory", Project.output_directory, check_relative_dir),
        ("install_command", Project.install_command, check_command),
        ("build_command", Project.build_command, check_command),
    ):
        value = getattr(data, field)
        if not isinstance(value, msgspec.UnsetType):
            values[column] = check(field, value)
    if not isinstance(data.allow_fork_builds, msgspec.UnsetType):
        values[Project.allow_fork_builds] = data.allow_fork_builds
    env_changes = {} if isinstance(data.env, msgspec.UnsetType) else data.env
    envvars.check_changes(env_changes)
    values[Project.updated_at] = datetime.now(UTC)
    async with write_transaction(engine):
        await Project.update(values).where(Project._meta.primary_key == row["id"])
        await envvars.apply_changes(sealer, int(row["id"]), env_changes)
    return await get_project(owner_id, slug, settings)


async def delete_project(
    owner_id: int, slug: str, announce: AliasAnnouncer, storage: Storage
) -> None:
    """Delete the project, its deployments and its aliases; tell the proxies once it is done;
    then delete its deployments' files and build logs from storage.

    Proxies listening on Redis do not poll, so they drop the hostnames only when told; told
    before the delete commits, they would read the rows again.
    """
    row = await _row(owner_id, slug)
    project_id = int(row["id"])
    hostnames = [
        alias["hostname"]
        for alias in await Alias.select(Alias.hostname).where(Alias.project == project_id)
    ]
    deployments = [
        str(deployment["id"])
        for deployment in await Deployment.select(Deployment._meta.primary_key).where(
            Deployment.project == project_id
        )
    ]
    await Project.delete().where(Project._meta.primary_key == project_id)
    await announce(hostnames)
    try:
        await storage.delete_prefix(project_prefix(project_id))
        await storage.delete(*(archive_key(deployment_id) for deployment_id in deployments))
    except StorageError as exc:
        # The project is gone already; files left behind cost space, not correctness.
        log.warning(
            "project files not deleted",
            extra={"project": slug, "project_id": project_id, "error": str(exc)},
        )


# --- routes -------------------------------------------------------------------------------

_user = {"user": Provide(provide_user)}


@post("/project", status_code=201, dependencies=_user, summary="Create a project")
async def create(
    data: JSONBody[ProjectIn],
    user: NamedDependency[CurrentUser],
    engine: NamedDependency[AnyEngine],
    sealer: NamedDependency[Sealer],
    settings: NamedDependency[Settings],
) -> ProjectOut:
    return await create_project(engine, sealer, settings, user.id, data)


@get("/projects", dependencies=_user, summary="Your projects")
async def index(
    user: NamedDependency[CurrentUser], settings: NamedDependency[Settings]
) -> list[ProjectOut]:
    return await list_projects(user.id, settings)


@get("/projects/{slug:str}", dependencies=_user, summary="One of your projects")
async def show(
    slug: FromPath[str], user: NamedDependency[CurrentUser], settings: NamedDependency[Settings]
) -> ProjectOut:
    return await get_project(user.id, slug, settings)


@patch("/projects/{slug:str}", dependencies=_user, summary="Change a project's settings or env")
async def change(
    slug: FromPath[str],
    data: JSONBody[ProjectPatch],
    user: NamedDependency[CurrentUser],
    engine: NamedDependency[AnyEngine],
    sealer: NamedDependency[Sealer],
    settings: NamedDependency[Settings],
) -> ProjectOut:
    return await update_project(engine, sealer, settings, user.id, slug, data)


@delete("/projects/{slug:str}", status_code=204, dependencies=_user, summary="Delete a project")
async def remove(
    slug: FromPath[str],
    user: NamedDependency[CurrentUser],
    announce_aliases: NamedDependency[AliasAnnouncer],
    storage: NamedDependency[Storage],
) -> None:
    await delete_project(user.id, slug, announce_aliases, storage)


ROUTES = [create, index, show, change, remove]
