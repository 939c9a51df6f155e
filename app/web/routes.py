"""Every dashboard route, behind one router that keeps pages out of the API's schema."""

from __future__ import annotations

from litestar import Router
from litestar.static_files import create_static_files_router

from app.http.csrf import FORM_ROUTES
from app.web import accounts, deliveries, deployments, domains, preview_ttl, projects
from app.web.pages import APP_DIR, UI, Answered, answered

ROUTES = [
    Router(
        path="/",
        include_in_schema=False,
        exception_handlers={Answered: answered},
        opt=FORM_ROUTES,
        route_handlers=[
            *accounts.ROUTES,
            *projects.ROUTES,
            *domains.ROUTES,
            *preview_ttl.ROUTES,
            *deployments.ROUTES,
            *deliveries.ROUTES,
        ],
    ),
    create_static_files_router(
        path=f"{UI}/static", directories=[APP_DIR / "static"], include_in_schema=False
    ),
]
