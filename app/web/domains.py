"""The dashboard's Domains section: add, verify and remove a project's custom domains.

The section itself is part of the project page (`_domains.html`, filled by
`Dashboard.project_page`); these are its forms. Each calls `DomainService` as the API routes
do, answers 303 back to the page when it worked, and otherwise shows the project page again
with the refusal next to the section and the add form filled in as it was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from app.domains.service import NewDomain
from app.errors import ErrorCode, UserError
from app.projects.routes import actor
from app.users.records import CurrentUser
from app.web.pages import UI, form_user, not_found
from app.web.projects import Dashboard

FIELDS = ("name", "redirect_to", "git_branch")
"""The add form's fields; an empty optional one means "none"."""


def _back(slug: str, anchor: str) -> Redirect:
    return Redirect(f"/projects/{quote(slug, safe='')}#{quote(anchor, safe='')}", status_code=303)


async def _refused(
    request: Request[Any, Any, Any],
    dashboard: Dashboard,
    user: CurrentUser,
    slug: str,
    exc: UserError,
    values: Mapping[str, str] | None = None,
) -> Response[str] | Redirect:
    """The "not found" page for a project the user may not see (or that is gone), else the
    project page saying why in its Domains section."""
    if exc.code is ErrorCode.PROJECT_NOT_FOUND:
        return not_found(request, dashboard.settings, user, exc.detail)
    return await dashboard.project_page(
        request, user, slug, refused=exc, form="domains", domain_values=values
    )


@post(f"{UI}/projects/{{slug:str}}/domains", status_code=200)
async def domain_add_submit(
    request: Request[Any, Any, Any], slug: FromPath[str], dashboard: NamedDependency[Dashboard]
) -> Response[str] | Redirect:
    """Add a domain (pending until DNS proves ownership); the page then shows its records."""
    user, form = await form_user(request, dashboard.settings, dashboard.users)
    values = {field: form.get(field, "").strip() for field in FIELDS}
    new = NewDomain(values["name"], values["redirect_to"] or None, values["git_branch"] or None)
    try:
        added = await dashboard.domains.add(actor(user), slug, new)
    except UserError as exc:
        return await _refused(request, dashboard, user, slug, exc, values)
    return _back(slug, f"domain-{added.name}")


@post(f"{UI}/projects/{{slug:str}}/domains/{{name:str}}/verify", status_code=200)
async def domain_verify_submit(
    request: Request[Any, Any, Any],
    slug: FromPath[str],
    name: FromPath[str],
    dashboard: NamedDependency[Dashboard],
) -> Response[str] | Redirect:
    """Check the domain's DNS now; the page shows what was found."""
    user, _ = await form_user(request, dashboard.settings, dashboard.users)
    try:
        checked = await dashboard.domains.verify(actor(user), slug, name)
    except UserError as exc:
        return await _refused(request, dashboard, user, slug, exc)
    return _back(slug, f"domain-{checked.name}")


@post(f"{UI}/projects/{{slug:str}}/domains/{{name:str}}/remove", status_code=200)
async def domain_remove_submit(
    request: Request[Any, Any, Any],
    slug: FromPath[str],
    name: FromPath[str],
    dashboard: NamedDependency[Dashboard],
) -> Response[str] | Redirect:
    """Remove the domain: every proxy stops serving it at once."""
    user, _ = await form_user(request, dashboard.settings, dashboard.users)
    try:
        await dashboard.domains.remove(actor(user), slug, name)
    except UserError as exc:
        return await _refused(request, dashboard, user, slug, exc)
    return _back(slug, "domains")


ROUTES = [domain_add_submit, domain_verify_submit, domain_remove_submit]
