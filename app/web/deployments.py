"""The dashboard's deployment page (with the live log viewer) and its Promote and Cancel forms."""

from __future__ import annotations

import contextlib
from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from app.deployments.service import DeploymentService
from app.deployments.views import DeploymentView
from app.errors import UserError
from app.http.errors import status_of
from app.projects.service import ProjectService
from app.settings import Settings
from app.users.records import CurrentUser
from app.users.service import UserService
from app.web.pages import UI, Answered, form_user, not_found, page, page_user
from app.web.projects import project_page_for
from app.web.rows import DeploymentRow


async def shown_deployment(
    request: Request[Any, Any, Any],
    settings: Settings,
    deployments: DeploymentService,
    user: CurrentUser,
    deployment_id: str,
) -> DeploymentView:
    """The user's deployment, or a 404 page."""
    try:
        return await deployments.get(user.id, deployment_id)
    except UserError as exc:
        raise Answered(not_found(request, settings, user, exc.detail)) from None


@get(f"{UI}/deployments/{{deployment_id:str}}")
async def deployment_page(
    request: Request[Any, Any, Any],
    deployment_id: FromPath[str],
    settings: NamedDependency[Settings],
    users: NamedDependency[UserService],
    deployments: NamedDependency[DeploymentService],
) -> Response[str] | Redirect:
    user = await page_user(request, users)
    view = await shown_deployment(request, settings, deployments, user, deployment_id)
    return page(
        request,
        settings,
        user,
        "deployment.html",
        slug=view.slug,
        deployment=DeploymentRow.of(view),
        log_url=f"/deployments/{view.id}/logs",
        socket_path=f"/deployments/{view.id}/logs/ws",
    )


@post(f"{UI}/deployments/{{deployment_id:str}}/promote", status_code=200)
async def promote_submit(
    request: Request[Any, Any, Any],
    deployment_id: FromPath[str],
    settings: NamedDependency[Settings],
    users: NamedDependency[UserService],
    projects: NamedDependency[ProjectService],
    deployments: NamedDependency[DeploymentService],
) -> Response[str] | Redirect:
    user, _ = await form_user(request, settings, users)
    view = await shown_deployment(request, settings, deployments, user, deployment_id)
    try:
        await deployments.promote(user.id, view.id)
    except UserError as exc:
        return await project_page_for(
            request,
            settings,
            projects,
            deployments,
            user,
            view.slug,
            status_code=status_of(exc),
            deploy_error=exc.detail,
        )
    return Redirect(f"/projects/{view.slug}", status_code=303)


@post(f"{UI}/deployments/{{deployment_id:str}}/cancel", status_code=200)
async def cancel_submit(
    request: Request[Any, Any, Any],
    deployment_id: FromPath[str],
    settings: NamedDependency[Settings],
    users: NamedDependency[UserService],
    deployments: NamedDependency[DeploymentService],
) -> Response[str] | Redirect:
    user, _ = await form_user(request, settings, users)
    view = await shown_deployment(request, settings, deployments, user, deployment_id)
    # Already finished (or gone) by now: the page it lands on shows how.
    with contextlib.suppress(UserError):
        await deployments.cancel(user.id, view.id)
    return Redirect(f"/deployments/{view.id}", status_code=303)


ROUTES = [deployment_page, promote_submit, cancel_submit]
