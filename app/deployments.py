"""Deployments: the lifecycle rules, moving aliases, and the `/deploy` and `/deployments` API.

States (`app.tables.DeploymentState`) change only along `TRANSITIONS`, each with a conditional
`UPDATE ... WHERE state IN (...)`, so two API replicas never both act on one deployment.
What GitHub is told is a separate vocabulary, mapped in exactly one place: `to_github_state`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol, runtime_checkable

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from app import hostnames
from app.aliases import AliasAnnouncer
from app.auth import CurrentUser, provide_user
from app.database import AnyEngine, write_transaction
from app.errors import Conflict, InvalidRequest, NotFound
from app.logs import LogBus, read_log, render_text
from app.refs import RefError, RefResolver
from app.settings import Settings
from app.storage import Storage
from app.tables import Alias, Deployment, DeploymentState, Project, Target

log = logging.getLogger(__name__)

S = DeploymentState
TRANSITIONS: dict[DeploymentState, frozenset[DeploymentState]] = {
    S.QUEUED: frozenset({S.BUILDING, S.FAILED, S.CANCELLED}),
    S.BUILDING: frozenset({S.READY, S.FAILED, S.CANCELLED}),
    S.READY: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
UNFINISHED = (S.QUEUED, S.BUILDING)
MAX_MESSAGE = 2000


@runtime_checkable  # Litestar checks injected values against their type
class Pipeline(Protocol):
    """What the routes need of the reconcile loop (`app.reconcile.Reconciler`)."""

    def wake(self) -> None:
        """Look for work now rather than at the next interval."""

    async def finish(self, deployment_id: str) -> None:
        """Wrap up a deployment that reached a final state: stop its build, close its log."""


def to_github_state(state: DeploymentState, *, platform_fault: bool = False) -> str:
    """The commit-status state GitHub is sent for a deployment state."""
    if platform_fault:
        return "error"
    return {
        S.QUEUED: "pending",
        S.BUILDING: "pending",
        S.READY: "success",
        S.FAILED: "failure",
        S.CANCELLED: "failure",
    }[state]


def to_github_deployment_state(
    state: DeploymentState, *, platform_fault: bool = False, retired: bool = False
) -> str:
    """The GitHub Deployment status for a deployment state.

    A retired deployment (its pull request closed, its branch deleted) and a cancelled one are
    `inactive`: nothing failed, there is just nothing to visit.
    """
    if retired or state is S.CANCELLED:
        return "inactive"
    if platform_fault:
        return "error"
    return {
        S.QUEUED: "queued",
        S.BUILDING: "in_progress",
        S.READY: "success",
        S.FAILED: "failure",
    }[state]


async def move(
    deployment_id: str,
    sources: Iterable[DeploymentState],
    target: DeploymentState,
    **values: Any,
) -> bool:
    """Move a deployment from any of `sources` to `target`; False when it was in none of them.

    The check and the change are one statement, so of two callers racing, one wins.
    """
    sources = tuple(sources)
    for source in sources:
        if target not in TRANSITIONS[source]:
            raise ValueError(f"{source} → {target} is not a deployment transition")
    changes = {getattr(Deployment, name): value for name, value in values.items()}
    changes[Deployment.state] = target
    changes[Deployment.github_reported] = None  # GitHub has not heard of this state yet
    rows = await (
        Deployment.update(changes)
        .where(
            (Deployment._meta.primary_key == deployment_id) & Deployment.state.is_in(list(sources))
        )
        .returning(Deployment._meta.primary_key)
    )
    return bool(rows)


# --- aliases ------------------------------------------------------------------------------


async def point_alias(hostname: str, project_id: int, deployment_id: str) -> None:
    """Point `hostname` at the deployment, unless another project owns that hostname.

    One statement, so two replicas publishing at once cannot trip over each other.
    """
    await Alias.insert(
        Alias(
            hostname=hostname,
            project=project_id,
            deployment=deployment_id,
            updated_at=datetime.now(UTC),
        )
    ).on_conflict(
        target=Alias.hostname,
        action="DO UPDATE",
        values=[Alias.deployment, Alias.updated_at],
        where=Alias.project == project_id,
    )


async def publish(engine: AnyEngine, deployment_id: str, announce: AliasAnnouncer) -> None:
    """Point the deployment's aliases at it, now that it is ready (atomic deploy).

    Its own label always; its branch's label; the production label when it is a production
    deployment no older than the one production points at now. `announce` hears the moved
    hostnames once the transaction has committed: told sooner, a proxy would re-read (and
    cache) the old rows.
    """
    row = await (
        Deployment.select(
            Deployment.project,
            Deployment.project.slug,
            Deployment.branch,
            Deployment.target,
            Deployment.created_at,
        )
        .where(Deployment._meta.primary_key == deployment_id)
        .first()
    )
    if row is None:
        return
    project_id, slug = int(row["project"]), str(row["project.slug"])
    moved = [hostnames.deployment_label(slug, deployment_id)]
    async with write_transaction(engine):
        await point_alias(moved[0], project_id, deployment_id)
        if row["branch"]:
            moved.append(hostnames.branch_label(slug, row["branch"]))
            await point_alias(moved[-1], project_id, deployment_id)
        if row["target"] == Target.PRODUCTION and await _newer_than_production(
            slug, row["created_at"]
        ):
            moved.append(hostnames.production_label(slug))
            await point_alias(moved[-1], project_id, deployment_id)
    await announce(moved)


async def _newer_than_production(slug: str, created_at: datetime) -> bool:
    current = await (
        Alias.select(Alias.deployment.created_at)
        .where(Alias.hostname == hostnames.production_label(slug))
        .first()
    )
    return current is None or current["deployment.created_at"] <= created_at


# --- queueing -----------------------------------------------------------------------------


async def queue_deployment(
    engine: AnyEngine,
    resolver: RefResolver,
    project: dict[str, Any],
    ref: str | None,
) -> str:
    """Resolve `ref` (default: the production branch) and queue a build of that commit."""
    wanted = (ref or "").strip() or project["production_branch"]
    try:
        resolved = await resolver.resolve(project["git_url"], wanted)
    except RefError as exc:
        raise InvalidRequest(str(exc)) from None
    return await queue_commit(
        engine, project, sha=resolved.sha, ref=resolved.ref, branch=resolved.branch
    )


async def queue_commit(
    engine: AnyEngine,
    project: dict[str, Any],
    *,
    sha: str,
    ref: str,
    branch: str | None,
    pr_number: int | None = None,
    message: str = "",
    from_fork: bool = False,
    refused: str | None = None,
) -> str:
    """Queue a build of commit `sha` of the project; return the new deployment's id.

    Production when `branch` is the production branch. Older unfinished deployments of the same
    branch are cancelled: they would be out of date before they were done. `refused` records a
    deployment that will never be built (a fork's pull request) as cancelled with that reason,
    so the commit and the pull request still say why.
    """
    target = Target.PRODUCTION if branch == project["production_branch"] else Target.PREVIEW
    if from_fork:
        target = Target.PREVIEW  # a fork's branch name is theirs, whatever it is called
    deployment_id = str(uuid.uuid4())
    async with write_transaction(engine):
        await Deployment.insert(
            Deployment(
                id=deployment_id,
                project=project["id"],
                sha=sha,
                git_ref=ref,
                branch=branch,
                pr_number=pr_number,
                commit_message=message[:MAX_MESSAGE],
                target=target,
                from_fork=from_fork,
                state=S.QUEUED if refused is None else S.CANCELLED,
                error=refused,
            )
        )
        if branch is not None and refused is None and not from_fork:
            await supersede(int(project["id"]), branch, deployment_id)
    log.info(
        "deployment queued" if refused is None else "deployment refused",
        extra={"deployment_id": deployment_id, "project": project["slug"], "sha": sha},
    )
    return deployment_id


async def supersede(project_id: int, branch: str, newest_id: str) -> None:
    rows = await Deployment.select(Deployment._meta.primary_key).where(
        (Deployment.project == project_id)
        & (Deployment.branch == branch)
        & Deployment.state.is_in(list(UNFINISHED))
        & (Deployment._meta.primary_key != newest_id)
    )
    for row in rows:
        await move(str(row["id"]), UNFINISHED, S.CANCELLED, error=f"superseded by {newest_id}")


# --- reading ------------------------------------------------------------------------------


class DeploymentOut(msgspec.Struct):
    id: str
    project: str
    state: str
    target: str
    ref: str
    sha: str
    branch: str | None
    url: str
    """This deployment's own URL, which never changes."""
    aliases: list[str]
    """Every URL that points at it now (production, branch, custom domains)."""
    log_url: str
    created_at: datetime
    started_at: datetime | None
    ready_at: datetime | None
    finished_at: datetime | None
    error: str | None


COLUMNS = (
    Deployment._meta.primary_key,
    Deployment.project.slug,
    Deployment.state,
    Deployment.target,
    Deployment.git_ref,
    Deployment.sha,
    Deployment.branch,
    Deployment.created_at,
    Deployment.started_at,
    Deployment.ready_at,
    Deployment.finished_at,
    Deployment.error,
)


async def _render(rows: list[dict[str, Any]], settings: Settings) -> list[DeploymentOut]:
    ids = [str(row["id"]) for row in rows]
    aliases: dict[str, list[str]] = {deployment_id: [] for deployment_id in ids}
    if ids:
        for alias in await (
            Alias.select(Alias.hostname, Alias.deployment)
            .where(Alias.deployment.is_in(ids))
            .order_by(Alias.hostname)
        ):
            aliases[str(alias["deployment"])].append(_url(settings, alias["hostname"]))
    return [
        DeploymentOut(
            id=str(row["id"]),
            project=row["project.slug"],
            state=row["state"],
            target=row["target"],
            ref=row["git_ref"],
            sha=row["sha"],
            branch=row["branch"],
            url=_url(settings, hostnames.deployment_label(row["project.slug"], str(row["id"]))),
            aliases=aliases[str(row["id"])],
            log_url=f"{settings.public_url}/deployments/{row['id']}",
            created_at=row["created_at"],
            started_at=row["started_at"],
            ready_at=row["ready_at"],
            finished_at=row["finished_at"],
            error=row["error"],
        )
        for row in rows
    ]


def _url(settings: Settings, label: str) -> str:
    return settings.deployment_url(label)


def _valid_id(deployment_id: str) -> str:
    try:
        return str(uuid.UUID(deployment_id))
    except ValueError:
        raise NotFound(f"There is no deployment {deployment_id!r}.") from None


async def owned_row(owner_id: int, deployment_id: str) -> dict[str, Any]:
    row = await (
        Deployment.select(*COLUMNS, Deployment.project)
        .where(
            (Deployment._meta.primary_key == _valid_id(deployment_id))
            & (Deployment.project.owner == owner_id)
        )
        .first()
    )
    if row is None:
        raise NotFound(f"You have no deployment {deployment_id!r}.")
    return row


async def get_deployment(owner_id: int, deployment_id: str, settings: Settings) -> DeploymentOut:
    return (await _render([await owned_row(owner_id, deployment_id)], settings))[0]


# --- routes -------------------------------------------------------------------------------

_user = {"user": Provide(provide_user)}


class DeployIn(msgspec.Struct, forbid_unknown_fields=True):
    project: Annotated[str, msgspec.Meta(max_length=63)]
    ref: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    """A branch, a tag or a full sha; the project's production branch when left out."""


@post("/deploy", status_code=202, dependencies=_user, summary="Queue a deployment")
async def deploy(
    data: JSONBody[DeployIn],
    user: NamedDependency[CurrentUser],
    engine: NamedDependency[AnyEngine],
    ref_resolver: NamedDependency[RefResolver],
    pipeline: NamedDependency[Pipeline],
    settings: NamedDependency[Settings],
) -> DeploymentOut:
    deployment_id = await deploy_project(
        engine, ref_resolver, pipeline, user.id, data.project, data.ref
    )
    return await get_deployment(user.id, deployment_id, settings)


async def deploy_project(
    engine: AnyEngine,
    resolver: RefResolver,
    pipeline: Pipeline,
    owner_id: int,
    slug: str,
    ref: str | None,
) -> str:
    """Queue a build of the owner's project at `ref` and wake the loop; the deployment id.

    `NotFound` for someone else's (or no) project, `InvalidRequest` for an unknown ref.
    """
    project = await (
        Project.select().where((Project.slug == slug) & (Project.owner == owner_id)).first()
    )
    if project is None:
        raise NotFound(f"You have no project {slug!r}.")
    deployment_id = await queue_deployment(engine, resolver, project, ref)
    pipeline.wake()
    return deployment_id


@get("/deployments/{deployment_id:str}", dependencies=_user, summary="One deployment")
async def show(
    deployment_id: FromPath[str],
    user: NamedDependency[CurrentUser],
    settings: NamedDependency[Settings],
) -> DeploymentOut:
    return await get_deployment(user.id, deployment_id, settings)


@get(
    "/projects/{slug:str}/deployments",
    dependencies=_user,
    summary="A project's deployments, newest first",
)
async def index(
    request: Request[Any, Any, Any],
    slug: FromPath[str],
    user: NamedDependency[CurrentUser],
    settings: NamedDependency[Settings],
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
) -> Response[list[DeploymentOut]]:
    project = (
        await Project.select(Project._meta.primary_key)
        .where((Project.slug == slug) & (Project.owner == user.id))
        .first()
    )
    if project is None:
        raise NotFound(f"You have no project {slug!r}.")
    rows = await (
        Deployment.select(*COLUMNS)
        .where(Deployment.project == project["id"])
        .order_by(Deployment.created_at, ascending=False)
        .order_by(Deployment._meta.primary_key, ascending=False)
        .limit(limit + 1)
        .offset(offset)
    )
    headers = {}
    if len(rows) > limit:
        rows = rows[:limit]
        headers["Link"] = f'<{request.url.path}?limit={limit}&offset={offset + limit}>; rel="next"'
    return Response(await _render(rows, settings), headers=headers)


@post(
    "/deployments/{deployment_id:str}/cancel",
    status_code=200,
    dependencies=_user,
    summary="Cancel an unfinished deployment",
)
async def cancel(
    deployment_id: FromPath[str],
    user: NamedDependency[CurrentUser],
    pipeline: NamedDependency[Pipeline],
    settings: NamedDependency[Settings],
) -> DeploymentOut:
    row = await owned_row(user.id, deployment_id)
    if not await move(row["id"], UNFINISHED, S.CANCELLED, error="cancelled"):
        current = await owned_row(user.id, deployment_id)
        raise Conflict(f"The deployment is already {current['state']}; there is nothing to cancel.")
    await pipeline.finish(str(row["id"]))
    return await get_deployment(user.id, deployment_id, settings)


@post(
    "/deployments/{deployment_id:str}/promote",
    status_code=200,
    dependencies=_user,
    summary="Serve a ready deployment in production (also a rollback)",
)
async def promote(
    deployment_id: FromPath[str],
    user: NamedDependency[CurrentUser],
    engine: NamedDependency[AnyEngine],
    announce_aliases: NamedDependency[AliasAnnouncer],
    settings: NamedDependency[Settings],
) -> DeploymentOut:
    row = await owned_row(user.id, deployment_id)
    if row["state"] != S.READY:
        raise Conflict(f"Only a ready deployment can be promoted; this one is {row['state']}.")
    await promote_row(engine, announce_aliases, row)
    return await get_deployment(user.id, deployment_id, settings)


async def promote_row(engine: AnyEngine, announce: AliasAnnouncer, row: Mapping[str, Any]) -> None:
    """Point production at a ready deployment (a rollback when it is older)."""
    label = hostnames.production_label(str(row["project.slug"]))
    async with write_transaction(engine):
        await point_alias(label, int(row["project"]), str(row["id"]))
    await announce([label])
    log.info("deployment promoted", extra={"deployment_id": str(row["id"])})


@get(
    "/deployments/{deployment_id:str}/logs",
    dependencies=_user,
    summary="The build log so far: text, or NDJSON events with Accept: application/x-ndjson",
)
async def logs(
    request: Request[Any, Any, Any],
    deployment_id: FromPath[str],
    user: NamedDependency[CurrentUser],
    log_bus: NamedDependency[LogBus],
    storage: NamedDependency[Storage],
    since: Annotated[int, QueryParameter(ge=0)] = 0,
) -> Response[str]:
    row = await owned_row(user.id, deployment_id)
    events = await read_log(log_bus, storage, str(row["id"]), since)
    if "application/x-ndjson" in request.headers.get("accept", ""):
        body = "".join(msgspec.json.encode(event).decode() + "\n" for event in events)
        return Response(body, headers={"Content-Type": "application/x-ndjson"})
    return Response(render_text(events), headers={"Content-Type": "text/plain; charset=utf-8"})


ROUTES = [deploy, show, index, cancel, promote, logs]
