"""The `/deploy` and `/deployments` API: thin controllers over `DeploymentService`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from app.deployments.build_config import BuildConfig
from app.deployments.diff import AssetChange, Listed
from app.deployments.diffs import ProductionDiff
from app.deployments.service import DeploymentService
from app.deployments.views import DeploymentView
from app.errors import ErrorCode, UserError
from app.logs.text import render_text
from app.users.http import provide_user
from app.users.records import CurrentUser


class DeployIn(msgspec.Struct, forbid_unknown_fields=True):
    project: Annotated[str, msgspec.Meta(max_length=63)]
    ref: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    """A branch, a tag or a full sha; the project's production branch when left out."""
    clear_cache: bool = False
    """Build without restoring the branch's build cache (a fresh one is saved after)."""


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
    """Why it did not go live; for a `skipped` one, why the build was skipped (no code)."""
    error_code: str | None = None
    """A stable code for why it did not go live (`build_failed`, `timeout`, `cancelled`, …)."""
    github_error: str | None = None
    """Why GitHub has not heard of its latest change (commit status, GitHub Deployment, PR
    comment), or None. Retried unless `github_refused`."""
    github_refused: bool = False
    """GitHub refused that report for good; it is tried again only after the next change."""
    config: BuildConfig | None = None
    """The build's effective config once ready: each field's value and source (`project`, the
    config file, `detected`, `default`), env var names and scopes (never values), warnings."""

    @classmethod
    def of(cls, view: DeploymentView) -> DeploymentOut:
        return cls(
            id=view.id,
            project=view.slug,
            state=view.state.value,
            target=view.target.value,
            ref=view.ref,
            sha=view.sha,
            branch=view.branch,
            url=view.url,
            aliases=list(view.alias_urls),
            log_url=view.log_url,
            created_at=view.created_at,
            started_at=view.started_at,
            ready_at=view.ready_at,
            finished_at=view.finished_at,
            error=view.error,
            error_code=None if view.error_code is None else view.error_code.value,
            github_error=view.github_error,
            github_refused=view.github_refused,
            config=view.config,
        )


class UnpinnedOut(msgspec.Struct):
    production: DeploymentOut | None
    """What production serves now; None while no production deployment is ready."""


class ListedOut(msgspec.Struct):
    count: int
    names: list[str]
    """The first 20, sorted."""

    @classmethod
    def of(cls, listed: Listed) -> ListedOut:
        return cls(listed.count, list(listed.names))


class SizesOut(msgspec.Struct):
    raw: int
    """Bytes of every file, as stored."""
    br: int | None
    """Bytes sent to a browser taking brotli (`.br` siblings, else the file); null when the
    deployment's manifest predates recorded brotli sizes."""


class AssetOut(msgspec.Struct):
    path: str
    before: int | None
    """Bytes in production; null when the file is new."""
    after: int | None
    """Bytes in this deployment; null when it was removed."""
    delta: int
    br_delta: int | None


class DiffOut(msgspec.Struct):
    deployment: str
    against: str
    """The production deployment compared with."""
    added: ListedOut
    removed: ListedOut
    changed: ListedOut
    """Files in both whose sha256 differs."""
    unchanged: int
    before: SizesOut
    after: SizesOut
    largest: list[AssetOut]
    """The five files added, removed or changed with the largest raw size change."""
    pages_added: ListedOut
    pages_removed: ListedOut

    @classmethod
    def of(cls, found: ProductionDiff) -> DiffOut:
        d = found.diff
        return cls(
            deployment=found.deployment_id,
            against=found.production_id,
            added=ListedOut.of(d.added),
            removed=ListedOut.of(d.removed),
            changed=ListedOut.of(d.changed),
            unchanged=d.unchanged,
            before=SizesOut(d.before.raw, d.before.br),
            after=SizesOut(d.after.raw, d.after.br),
            largest=[_asset(change) for change in d.largest],
            pages_added=ListedOut.of(d.pages_added),
            pages_removed=ListedOut.of(d.pages_removed),
        )


def _asset(change: AssetChange) -> AssetOut:
    return AssetOut(change.path, change.before, change.after, change.delta, change.br_delta)


class DeploymentController(Controller):
    path = "/"
    dependencies = {"user": Provide(provide_user)}  # noqa: RUF012 - Litestar's own class attribute

    @post("/deploy", status_code=202, summary="Queue a deployment")
    async def deploy(
        self,
        data: JSONBody[DeployIn],
        user: NamedDependency[CurrentUser],
        deployments: NamedDependency[DeploymentService],
    ) -> DeploymentOut:
        queued = await deployments.deploy(
            user.id, data.project, data.ref, clear_cache=data.clear_cache
        )
        return DeploymentOut.of(queued)

    @get("/deployments/{deployment_id:str}", summary="One deployment")
    async def show(
        self,
        deployment_id: FromPath[str],
        user: NamedDependency[CurrentUser],
        deployments: NamedDependency[DeploymentService],
    ) -> DeploymentOut:
        return DeploymentOut.of(await deployments.get(user.id, deployment_id))

    @get(
        "/deployments/{deployment_id:str}/diff",
        summary="What a ready deployment changed against production: files, sizes, pages",
    )
    async def diff(
        self,
        deployment_id: FromPath[str],
        user: NamedDependency[CurrentUser],
        deployments: NamedDependency[DeploymentService],
        against: Annotated[str, QueryParameter(max_length=32)] = "production",
    ) -> DiffOut:
        if against != "production":
            raise UserError(
                ErrorCode.INVALID_REQUEST, f"against must be 'production', not {against!r}."
            )
        return DiffOut.of(await deployments.diff(user.id, deployment_id))

    @get("/projects/{slug:str}/deployments", summary="A project's deployments, newest first")
    async def index(
        self,
        request: Request[Any, Any, Any],
        slug: FromPath[str],
        user: NamedDependency[CurrentUser],
        deployments: NamedDependency[DeploymentService],
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
    ) -> Response[list[DeploymentOut]]:
        views = await deployments.list_for(user.id, slug, limit=limit + 1, offset=offset)
        headers = {}
        if len(views) > limit:
            views = views[:limit]
            next_page = f"{request.url.path}?limit={limit}&offset={offset + limit}"
            headers["Link"] = f'<{next_page}>; rel="next"'
        return Response([DeploymentOut.of(view) for view in views], headers=headers)

    @post(
        "/deployments/{deployment_id:str}/cancel",
        status_code=200,
        summary="Cancel an unfinished deployment",
    )
    async def cancel(
        self,
        deployment_id: FromPath[str],
        user: NamedDependency[CurrentUser],
        deployments: NamedDependency[DeploymentService],
    ) -> DeploymentOut:
        return DeploymentOut.of(await deployments.cancel(user.id, deployment_id))

    @post(
        "/deployments/{deployment_id:str}/promote",
        status_code=200,
        summary="Serve a ready deployment in production (also a rollback)",
        description=(
            "Promoting a deployment older than the newest ready production one is a rollback: "
            "production is pinned there, and new production builds go ready without taking it, "
            "until the next promote (of the newest: unpinned) or "
            "`DELETE /projects/{slug}/production-pin`."
        ),
    )
    async def promote(
        self,
        deployment_id: FromPath[str],
        user: NamedDependency[CurrentUser],
        deployments: NamedDependency[DeploymentService],
    ) -> DeploymentOut:
        return DeploymentOut.of(await deployments.promote(user.id, deployment_id))

    @delete(
        "/projects/{slug:str}/production-pin",
        status_code=200,
        summary="Unpin production: serve the newest ready production deployment again",
    )
    async def unpin(
        self,
        slug: FromPath[str],
        user: NamedDependency[CurrentUser],
        deployments: NamedDependency[DeploymentService],
    ) -> UnpinnedOut:
        moved = await deployments.unpin(user.id, slug)
        return UnpinnedOut(production=None if moved is None else DeploymentOut.of(moved))

    @get(
        "/deployments/{deployment_id:str}/logs",
        summary="The build log so far: text, or NDJSON events with Accept: application/x-ndjson",
    )
    async def logs(
        self,
        request: Request[Any, Any, Any],
        deployment_id: FromPath[str],
        user: NamedDependency[CurrentUser],
        deployments: NamedDependency[DeploymentService],
        since: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> Response[str]:
        events = await deployments.logs(user.id, deployment_id, since)
        if "application/x-ndjson" in request.headers.get("accept", ""):
            body = "".join(msgspec.json.encode(event).decode() + "\n" for event in events)
            return Response(body, headers={"Content-Type": "application/x-ndjson"})
        return Response(render_text(events), headers={"Content-Type": "text/plain; charset=utf-8"})
