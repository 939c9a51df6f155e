"""The dashboard's deployment page (with the live log viewer) and its Promote, Cancel and
Redeploy without cache forms."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from app.deployments.build_config import BuildConfig
from app.deployments.diffs import ProductionDiff
from app.deployments.lifecycle import DeploymentState
from app.deployments.views import DeploymentView
from app.errors import ErrorCode, UserError
from app.http.errors import status_of
from app.projects.access import Role
from app.reporting.diff_section import UNKNOWN, signed, size
from app.users.records import CurrentUser
from app.web.pages import UI, Answered, form_user, not_found, page, page_user
from app.web.projects import Dashboard
from app.web.rows import DeploymentRow


async def shown_deployment(
    request: Request[Any, Any, Any], dashboard: Dashboard, user: CurrentUser, deployment_id: str
) -> DeploymentView:
    """The user's deployment, or a 404 page."""
    try:
        return await dashboard.deployments.get(user.id, deployment_id)
    except UserError as exc:
        raise Answered(not_found(request, dashboard.settings, user, exc.detail)) from None


@get(f"{UI}/deployments/{{deployment_id:str}}")
async def deployment_page(
    request: Request[Any, Any, Any],
    deployment_id: FromPath[str],
    dashboard: NamedDependency[Dashboard],
) -> Response[str] | Redirect:
    user = await page_user(request, dashboard.users)
    view = await shown_deployment(request, dashboard, user, deployment_id)
    changes: ProductionDiff | UserError | None = None
    if view.state is DeploymentState.READY:
        try:
            changes = await dashboard.deployments.diffs.against_production(view)
        except UserError as exc:
            changes = exc
    return page(
        request,
        dashboard.settings,
        user,
        "deployment.html",
        slug=view.slug,
        deployment=DeploymentRow.of(view),
        can_push=await dashboard.deployments.role(user.id, view) >= Role.PUSH,
        log_url=f"/deployments/{view.id}/logs",
        socket_path=f"/deployments/{view.id}/logs/ws",
        config=view.config,
        config_rows=config_rows(view.config),
        changes=changes,
        changes_error=changes.detail if isinstance(changes, UserError) else None,
        size=size,
        signed=signed,
        unknown=UNKNOWN,
    )


@post(f"{UI}/deployments/{{deployment_id:str}}/promote", status_code=200)
async def promote_submit(
    request: Request[Any, Any, Any],
    deployment_id: FromPath[str],
    dashboard: NamedDependency[Dashboard],
) -> Response[str] | Redirect:
    user, _ = await form_user(request, dashboard.settings, dashboard.users)
    view = await shown_deployment(request, dashboard, user, deployment_id)
    try:
        await dashboard.deployments.promote(user.id, view.id)
    except UserError as exc:
        return await dashboard.project_page(request, user, view.slug, refused=exc)
    return Redirect(f"/projects/{view.slug}", status_code=303)


@post(f"{UI}/deployments/{{deployment_id:str}}/cancel", status_code=200)
async def cancel_submit(
    request: Request[Any, Any, Any],
    deployment_id: FromPath[str],
    dashboard: NamedDependency[Dashboard],
) -> Response[str] | Redirect:
    user, _ = await form_user(request, dashboard.settings, dashboard.users)
    view = await shown_deployment(request, dashboard, user, deployment_id)
    try:
        await dashboard.deployments.cancel(user.id, view.id)
    except UserError as exc:
        if exc.code in (ErrorCode.PERMISSION_DENIED, ErrorCode.GITHUB_UNAVAILABLE):
            return refused_page(request, dashboard, user, exc)
        # Already finished (or gone) by now: the page it lands on shows how.
    return Redirect(f"/deployments/{view.id}", status_code=303)


def refused_page(
    request: Request[Any, Any, Any], dashboard: Dashboard, user: CurrentUser, exc: UserError
) -> Response[str]:
    return page(
        request,
        dashboard.settings,
        user,
        "error.html",
        status_code=status_of(exc),
        title="Not allowed",
        message=exc.detail,
    )


@post(f"{UI}/deployments/{{deployment_id:str}}/redeploy", status_code=200)
async def redeploy_submit(
    request: Request[Any, Any, Any],
    deployment_id: FromPath[str],
    dashboard: NamedDependency[Dashboard],
) -> Response[str] | Redirect:
    """ "Redeploy without cache": the same commit again, its build cache not restored."""
    user, _ = await form_user(request, dashboard.settings, dashboard.users)
    view = await shown_deployment(request, dashboard, user, deployment_id)
    try:
        queued = await dashboard.deployments.redeploy_without_cache(user.id, view.id)
    except UserError as exc:
        return refused_page(request, dashboard, user, exc)
    return Redirect(f"/deployments/{queued.id}", status_code=303)


ROUTES = [deployment_page, promote_submit, cancel_submit, redeploy_submit]


def config_rows(config: BuildConfig | None) -> list[tuple[str, str, str]]:
    """The build config's table: (field, value as text, where it came from)."""
    if config is None:
        return []
    return [(name, _shown(field.value), field.source) for name, field in config.fields.items()]


def _shown(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_shown(item)}" for key, item in value.items())
    return str(value)
