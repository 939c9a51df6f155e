"""The project page's Previews section: how many days a preview may go without a push.

The section is part of the project page (`project.html`, filled by `Dashboard.project_page`);
this is its form. It changes `preview_ttl_days` as `PATCH /projects/{slug}` does, answers 303
back to the section when it worked, and otherwise shows the page again with the refusal there.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from app.errors import ErrorCode, UserError
from app.projects.access import Role
from app.projects.routes import actor
from app.projects.rules import parse_preview_ttl_days
from app.projects.service import ProjectChanges
from app.web.pages import UI, form_user, not_found
from app.web.projects import Dashboard

FORM = "previews"


@post(f"{UI}/projects/{{slug:str}}/preview-ttl", status_code=200)
async def preview_ttl_submit(
    request: Request[Any, Any, Any], slug: FromPath[str], dashboard: NamedDependency[Dashboard]
) -> Response[str] | Redirect:
    """Set the days (1 to 3650) an idle preview lives, or clear them (empty): then the
    repository's `previews.ttlDays` decides, else previews stay."""
    user, form = await form_user(request, dashboard.settings, dashboard.users)
    try:
        # Who may change it is said before what is wrong with the form.
        await dashboard.projects.get(user.id, slug, Role.ADMIN)
        days = parse_preview_ttl_days(form.get("preview_ttl_days", ""))
        await dashboard.projects.update(actor(user), slug, ProjectChanges(preview_ttl_days=days))
    except UserError as exc:
        if exc.code is ErrorCode.PROJECT_NOT_FOUND:
            return not_found(request, dashboard.settings, user, exc.detail)
        return await dashboard.project_page(request, user, slug, refused=exc, form=FORM)
    return Redirect(f"/projects/{quote(slug, safe='')}#{FORM}", status_code=303)


ROUTES = [preview_ttl_submit]
