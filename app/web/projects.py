"""The dashboard's project pages: the project list, a new project, one project and its forms."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from app.deployments.service import DeploymentService
from app.domains.service import DomainService
from app.errors import ErrorCode, ErrorKind, UserError
from app.http.errors import status_of
from app.previews.service import PreviewService
from app.projects.access import Role
from app.projects.records import ProjectRecord
from app.projects.routes import ProjectIn, ProjectOut, actor
from app.projects.rules import (
    Protection,
    check_branch,
    check_command,
    check_name,
    check_relative_dir,
    parse_repo,
)
from app.projects.scopes import Scope, ScopeKind, branch_scope, parse_scopes
from app.projects.service import ProjectChanges, ProjectService
from app.settings import Settings
from app.users.http import signed_in
from app.users.records import CurrentUser
from app.users.service import UserService
from app.web.pages import (
    CSRF_FIELD,
    PAGE_HEADERS,
    UI,
    form_user,
    not_found,
    page,
    page_user,
    templates,
    viewer,
)
from app.web.rows import DEPLOYMENTS_SHOWN, DeploymentRow, ProjectCard

NEW_PROJECT_FIELDS = (
    "name",
    "repo",
    "production_branch",
    "root_directory",
    "install_command",
    "build_command",
    "output_directory",
)

REPO_REFUSALS = frozenset(
    {
        ErrorCode.INVALID_REPO,
        ErrorCode.REPOSITORY_NOT_FOUND,
        ErrorCode.PERMISSION_DENIED,
        ErrorCode.ADMIN_ONLY,
        ErrorCode.GITHUB_UNAVAILABLE,
    }
)
"""Refusals of a new project that concern its repository (shown next to that field)."""


@dataclass(frozen=True, slots=True)
class Dashboard:
    """What the project and deployment pages work with, injected as one (`dashboard`)."""

    settings: Settings
    users: UserService
    projects: ProjectService
    deployments: DeploymentService
    previews: PreviewService
    domains: DomainService

    async def rows(
        self, project: ProjectRecord, limit: int = DEPLOYMENTS_SHOWN
    ) -> list[DeploymentRow]:
        views = await self.deployments.of_project(project, limit=limit)
        return [DeploymentRow.of(view) for view in views]

    async def project_page(
        self,
        request: Request[Any, Any, Any],
        user: CurrentUser,
        slug: str,
        *,
        refused: UserError | None = None,
        form: str = "deploy",
        env_name: str = "",
        bypass_secret: str | None = None,
        domain_values: Mapping[str, str] | None = None,
    ) -> Response[str]:
        """The project page; with what `form` (`deploy`, `env`, `protection`, `previews` or
        `domains`) was refused for, if it was, and the domain form as sent; with a new bypass
        secret, shown this once."""
        try:
            details = await self.projects.get(user.id, slug)
        except UserError as exc:
            if exc.kind is ErrorKind.NOT_FOUND:
                return not_found(request, self.settings, user, exc.detail)
            return page(
                request,
                self.settings,
                user,
                "error.html",
                status_code=status_of(exc),
                title="Try again",
                message=exc.detail,
            )
        shown = ProjectOut.of(details)
        return page(
            request,
            self.settings,
            user,
            "project.html",
            status_code=status_of(refused) if refused else 200,
            project=shown,
            deployments=await self.rows(details.project),
            can_push=details.role >= Role.PUSH,
            can_admin=details.role >= Role.ADMIN,
            github=shown.github,
            deploy_error=refused.detail if refused and form == "deploy" else None,
            env_error=refused.detail if refused and form == "env" else None,
            env_name=env_name,
            protection_error=refused.detail if refused and form == "protection" else None,
            previews_error=refused.detail if refused and form == "previews" else None,
            protections=[level.value for level in Protection],
            bypass_secret=bypass_secret,
            domains=await self.domains.list_for(user.id, slug),
            can_manage_domains=details.role >= Role.ADMIN,
            domains_error=refused.detail if refused and form == "domains" else None,
            domain_values=domain_values or {},
        )


@get("/")
async def dashboard_page(
    request: Request[Any, Any, Any], dashboard: NamedDependency[Dashboard]
) -> Response[str] | Redirect:
    user = await page_user(request, dashboard.users)
    cards = []
    for details in await dashboard.projects.list_for(user.id):
        last = await dashboard.rows(details.project, 1)
        cards.append(ProjectCard(ProjectOut.of(details), last[0] if last else None))
    return page(request, dashboard.settings, user, "dashboard.html", cards=cards)


@get("/new")
async def new_project_page(
    request: Request[Any, Any, Any], dashboard: NamedDependency[Dashboard]
) -> Response[str] | Redirect:
    user = await page_user(request, dashboard.users)
    values = dict.fromkeys(NEW_PROJECT_FIELDS, "")
    values["production_branch"] = "main"
    return page(request, dashboard.settings, user, "new_project.html", values=values, errors={})


def project_errors(form: Mapping[str, str], settings: Settings) -> dict[str, str]:
    """Each field's own problem, so the form can show it next to the field."""
    checks: dict[str, Callable[[str], object]] = {
        "name": check_name,
        "repo": lambda value: parse_repo(value, settings),
        "production_branch": check_branch,
        "root_directory": lambda value: check_relative_dir("root directory", value),
        "output_directory": lambda value: check_relative_dir("output directory", value),
        "install_command": lambda value: check_command("install command", value),
        "build_command": lambda value: check_command("build command", value),
    }
    errors = {}
    for field, check in checks.items():
        try:
            check(form.get(field, ""))
        except UserError as exc:
            errors[field] = exc.detail
    return errors


@post("/new", status_code=200)
async def new_project_submit(
    request: Request[Any, Any, Any], dashboard: NamedDependency[Dashboard]
) -> Response[str] | Redirect:
    settings = dashboard.settings
    user, form = await form_user(request, settings, dashboard.users)
    values = {field: form.get(field, "").strip() for field in NEW_PROJECT_FIELDS}
    errors = project_errors(values, settings)
    if not errors:
        try:
            data = msgspec.convert(
                {name: value for name, value in values.items() if value}, ProjectIn
            )
            created = await dashboard.projects.create(actor(user), data.new_project())
        except msgspec.ValidationError as exc:
            # Only the length limits are left to msgspec: the checks above said the rest.
            problem = str(exc)
            field = next((name for name in NEW_PROJECT_FIELDS if f"$.{name}`" in problem), "repo")
            errors[field] = f"{problem.split(' - ')[0]}."
        except UserError as exc:
            # Access to the repository concerns the repo; anything else (a taken URL name)
            # the name.
            errors["repo" if exc.code in REPO_REFUSALS else "name"] = exc.detail
        else:
            return Redirect(f"/projects/{created.project.slug}", status_code=303)
    return page(
        request, settings, user, "new_project.html", status_code=400, values=values, errors=errors
    )


@get(f"{UI}/projects/{{slug:str}}")
async def project_page(
    request: Request[Any, Any, Any], slug: FromPath[str], dashboard: NamedDependency[Dashboard]
) -> Response[str] | Redirect:
    user = await page_user(request, dashboard.users)
    return await dashboard.project_page(request, user, slug)


@get(f"{UI}/projects/{{slug:str}}/deployments")
async def deployments_fragment(
    request: Request[Any, Any, Any], slug: FromPath[str], dashboard: NamedDependency[Dashboard]
) -> Response[str]:
    """The deployments table alone: the project page polls it to keep states live."""
    user = await signed_in(request, dashboard.users)
    if user is None:
        return Response("", status_code=404, headers=PAGE_HEADERS)
    try:
        details = await dashboard.projects.get(user.id, slug)
    except UserError as exc:
        return Response("", status_code=status_of(exc), headers=PAGE_HEADERS)
    rows = await dashboard.rows(details.project)
    seen = viewer(request, dashboard.settings, user)
    html = (
        templates()
        .get_template("_deployments.html")
        .render(
            deployments=rows,
            csrf=seen.csrf,
            csrf_field=CSRF_FIELD,
            slug=slug,
            can_push=details.role >= Role.PUSH,
        )
    )
    return Response(html, headers=PAGE_HEADERS)


async def _refused(
    request: Request[Any, Any, Any],
    dashboard: Dashboard,
    user: CurrentUser,
    slug: str,
    exc: UserError,
    form: str = "deploy",
) -> Response[str] | Redirect:
    """A refused form's answer: the "not found" page for a project the user may not see (or
    that is gone), else the project page saying why, next to `form`."""
    if exc.code is ErrorCode.PROJECT_NOT_FOUND:
        return not_found(request, dashboard.settings, user, exc.detail)
    return await dashboard.project_page(request, user, slug, refused=exc, form=form)


@post(f"{UI}/projects/{{slug:str}}/deploy", status_code=200)
async def deploy_submit(
    request: Request[Any, Any, Any], slug: FromPath[str], dashboard: NamedDependency[Dashboard]
) -> Response[str] | Redirect:
    user, form = await form_user(request, dashboard.settings, dashboard.users)
    try:
        queued = await dashboard.deployments.deploy(user.id, slug, form.get("ref"))
    except UserError as exc:
        return await _refused(request, dashboard, user, slug, exc)
    return Redirect(f"/deployments/{queued.id}", status_code=303)


@post(f"{UI}/projects/{{slug:str}}/unpin", status_code=200)
async def unpin_submit(
    request: Request[Any, Any, Any], slug: FromPath[str], dashboard: NamedDependency[Dashboard]
) -> Response[str] | Redirect:
    """The pinned banner's button: production serves the newest ready deployment again."""
    user, _ = await form_user(request, dashboard.settings, dashboard.users)
    try:
        await dashboard.deployments.unpin(user.id, slug)
    except UserError as exc:
        return await _refused(request, dashboard, user, slug, exc)
    return Redirect(f"/projects/{slug}", status_code=303)


@post(f"{UI}/projects/{{slug:str}}/env", status_code=200)
async def env_submit(
    request: Request[Any, Any, Any], slug: FromPath[str], dashboard: NamedDependency[Dashboard]
) -> Response[str] | Redirect:
    """Set one env var for the scopes ticked (and a branch's previews, if one is named), or
    delete it (`delete` set) from one `scope` or every one: values only ever go in."""
    user, form = await form_user(request, dashboard.settings, dashboard.users)
    name = form.get("name", "").strip()
    try:
        # Who may change them is said before what is wrong with the form.
        await dashboard.projects.get(user.id, slug, Role.PUSH)
        if "delete" in form:
            scope = form.get("scope", "")
            chosen = parse_scopes([scope] if scope else [])
            await dashboard.projects.unset_env(actor(user), slug, name, chosen)
        else:
            await dashboard.projects.set_env(
                actor(user), slug, name, form.get("value", ""), _ticked(form)
            )
    except UserError as exc:
        return await dashboard.project_page(
            request, user, slug, refused=exc, form="env", env_name=name
        )
    return Redirect(f"/projects/{slug}#env", status_code=303)


def _ticked(form: Mapping[str, str]) -> tuple[Scope, ...]:
    """The env form's scopes: the boxes ticked, and the branch named; at least one."""
    labels = [kind for kind in (ScopeKind.PRODUCTION, ScopeKind.PREVIEW) if kind in form]
    branch = form.get("branch", "").strip()
    chosen = parse_scopes(labels) + ((branch_scope(branch),) if branch else ())
    if not chosen:
        raise UserError(
            ErrorCode.ENV_SCOPE_INVALID,
            "Choose where the value applies: production, preview, or a branch's previews.",
        )
    return chosen


@post(f"{UI}/projects/{{slug:str}}/protection", status_code=200)
async def protection_submit(
    request: Request[Any, Any, Any], slug: FromPath[str], dashboard: NamedDependency[Dashboard]
) -> Response[str] | Redirect:
    """Change who may open the project's deployments (`none`, `previews`, `all`)."""
    user, form = await form_user(request, dashboard.settings, dashboard.users)
    try:
        level = Protection(form.get("protection", ""))
    except ValueError:
        refused = UserError(ErrorCode.INVALID_REQUEST, "Choose none, previews or all.")
        return await _refused(request, dashboard, user, slug, refused, "protection")
    try:
        await dashboard.projects.update(actor(user), slug, ProjectChanges(protection=level))
    except UserError as exc:
        return await _refused(request, dashboard, user, slug, exc, "protection")
    return Redirect(f"/projects/{slug}#protection", status_code=303)


@post(f"{UI}/projects/{{slug:str}}/protection-bypass", status_code=200)
async def bypass_submit(
    request: Request[Any, Any, Any], slug: FromPath[str], dashboard: NamedDependency[Dashboard]
) -> Response[str] | Redirect:
    """Create (or replace) the bypass secret and show it on the page, this once."""
    user, _ = await form_user(request, dashboard.settings, dashboard.users)
    try:
        made = await dashboard.previews.create_bypass(user.id, slug)
    except UserError as exc:
        return await _refused(request, dashboard, user, slug, exc, "protection")
    return await dashboard.project_page(request, user, slug, bypass_secret=made.secret)


@post(f"{UI}/projects/{{slug:str}}/link", status_code=200)
async def link_submit(
    request: Request[Any, Any, Any], slug: FromPath[str], dashboard: NamedDependency[Dashboard]
) -> Response[str] | Redirect:
    """Bind the project to its GitHub repository with the user's push access there."""
    user, _ = await form_user(request, dashboard.settings, dashboard.users)
    try:
        await dashboard.projects.link(actor(user), slug)
    except UserError as exc:
        return await _refused(request, dashboard, user, slug, exc)
    return Redirect(f"/projects/{slug}", status_code=303)


ROUTES = [
    dashboard_page,
    new_project_page,
    new_project_submit,
    project_page,
    deployments_fragment,
    deploy_submit,
    unpin_submit,
    env_submit,
    protection_submit,
    bypass_submit,
    link_submit,
]
