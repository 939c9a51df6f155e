"""The admin's page of dead letters (webhook deliveries given up on) and its Retry form."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from app.users.records import CurrentUser
from app.web.pages import UI, form_user, page, page_user
from app.web.projects import Dashboard
from app.webhooks.dead_letters import dead_letters
from app.webhooks.worker import DeliveryWorker


def admins_only(
    request: Request[Any, Any, Any], dashboard: Dashboard, user: CurrentUser
) -> Response[str] | None:
    if user.is_admin:
        return None
    return page(
        request,
        dashboard.settings,
        user,
        "error.html",
        status_code=403,
        title="Not allowed",
        message="Only an admin sees webhook deliveries.",
    )


@get("/deliveries")
async def deliveries_page(
    request: Request[Any, Any, Any], dashboard: NamedDependency[Dashboard]
) -> Response[str] | Redirect:
    user = await page_user(request, dashboard.users)
    refused = admins_only(request, dashboard, user)
    if refused is not None:
        return refused
    return page(request, dashboard.settings, user, "deliveries.html", dead=await dead_letters())


@post(f"{UI}/deliveries/{{delivery_id:str}}/retry", status_code=200)
async def retry_submit(
    request: Request[Any, Any, Any],
    delivery_id: FromPath[str],
    dashboard: NamedDependency[Dashboard],
    deliveries: NamedDependency[DeliveryWorker],
) -> Response[str] | Redirect:
    user, _ = await form_user(request, dashboard.settings, dashboard.users)
    refused = admins_only(request, dashboard, user)
    if refused is not None:
        return refused
    # Retried already (or never dead): the list it lands on shows what is left.
    await deliveries.retry(delivery_id)
    return Redirect("/deliveries", status_code=303)


ROUTES = [deliveries_page, retry_submit]
