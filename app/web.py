"""The web dashboard: server-rendered pages and the forms behind them, for people in a browser.

Pages live under `/` (DESIGN §10). `/projects/<slug>` and `/deployments/<id>` are also JSON API
paths; `BrowserPages` sends a browser's GET of them (one that accepts `text/html`) to the page
handlers under `/ui`, and every other client keeps getting JSON. Form actions and static files
live under `/ui` too, so the API's namespace stays the API's.

Forms carry a CSRF token: an HMAC, under the secret key, of a random per-browser cookie and the
session, so a token is worth nothing to another browser or after signing out. API calls with a
bearer token are not forms and are not affected.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import msgspec
from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Receive, Scope, Send

from app import deployments, hostnames
from app.aliases import AliasAnnouncer
from app.auth import (
    CurrentUser,
    cleared_cookie,
    end_session,
    presented_token,
    session_cookie,
    start_session,
    user_for_token,
)
from app.database import AnyEngine
from app.deployments import (
    UNFINISHED,
    Pipeline,
    move,
    owned_row,
)
from app.envvars import Sealer
from app.errors import ApiError, NotFound
from app.projects import (
    ProjectIn,
    ProjectOut,
    ProjectPatch,
    check_branch,
    check_command,
    check_name,
    check_relative_dir,
    create_project,
    get_project,
    list_projects,
    parse_repo,
    update_project,
)
from app.refs import RefResolver
from app.settings import Settings
from app.tables import FINAL_STATES, Alias, Deployment, DeploymentState, Project
from app.users import authenticate, create_user

log = logging.getLogger(__name__)

UI = "/ui"
"""Where page handlers, form actions and static files live; browsers rarely see it."""
CSRF_COOKIE = "scalemesh_csrf"
CSRF_FIELD = "csrf"
DEPLOYMENTS_SHOWN = 25
HERE = Path(__file__).resolve().parent
_SHARED_PATHS = re.compile(r"^/(?:projects|deployments)/[^/]+$")
_PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Vary": "Accept, Cookie",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Scripts and styles are our own files only, so an injected tag in a log line or a name
    # could not run even if escaping failed.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
}


# --- routing browsers to pages -------------------------------------------------------------


def wants_page(scope: Scope) -> bool:
    """A browser navigating (GET, accepts HTML) to a path the JSON API shares with a page."""
    if scope["type"] != ScopeType.HTTP:
        return False
    if scope["method"] != "GET" or not _SHARED_PATHS.match(scope["path"]):
        return False
    accept = next((value for name, value in scope["headers"] if name == b"accept"), b"")
    return b"text/html" in accept


class BrowserPages:
    """App middleware: answer a browser's GET of `/projects/<slug>` or `/deployments/<id>`
    with the page instead of the JSON.

    Litestar runs middleware after routing, so this routes the request again, to the page
    handler under `/ui`; API clients (JSON, or no `text/html` in Accept) pass straight on.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not wants_page(scope):
            await self.app(scope, receive, send)
            return
        path = UI + scope["path"]
        paged: Any = {**scope, "path": path, "raw_path": path.encode()}
        await scope["litestar_app"].asgi_router(paged, receive, send)


# --- rendering ------------------------------------------------------------------------------


@functools.cache
def templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["ago"] = ago
    environment.filters["clock"] = clock
    return environment


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """`3 min ago`, for a list that is read at a glance; the exact time goes in a title."""
    if moment is None:
        return "—"
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now" if seconds < 10 else f"{seconds} s ago"


def clock(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking, and the CSRF material their forms need."""

    user: CurrentUser | None
    nonce: str
    new_nonce: bool
    csrf: str


def viewer(request: Request[Any, Any, Any], settings: Settings, user: CurrentUser | None) -> Viewer:
    nonce = request.cookies.get(CSRF_COOKIE, "")
    fresh = not re.fullmatch(r"[A-Za-z0-9_-]{32,64}", nonce)
    if fresh:
        nonce = secrets.token_urlsafe(32)
    return Viewer(user, nonce, fresh, csrf_token(settings, nonce, user))


def csrf_token(settings: Settings, nonce: str, user: CurrentUser | None) -> str:
    session = user.token_hash if user else ""
    message = f"csrf|{nonce}|{session}".encode()
    return hmac.new(settings.secret_key.reveal().encode(), message, hashlib.sha256).hexdigest()


def page(
    request: Request[Any, Any, Any],
    settings: Settings,
    user: CurrentUser | None,
    template: str,
    *,
    status_code: int = 200,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Response[str]:
    seen = viewer(request, settings, user)
    html = (
        templates()
        .get_template(template)
        .render(user=user, csrf=seen.csrf, csrf_field=CSRF_FIELD, path=request.url.path, **context)
    )
    sent = list(cookies or [])
    if seen.new_nonce:
        sent.append(
            Cookie(
                key=CSRF_COOKIE,
                value=seen.nonce,
                path="/",
                httponly=True,
                samesite="lax",
                secure=settings.secure_cookies,
            )
        )
    return Response(html, status_code=status_code, headers=_PAGE_HEADERS, cookies=sent)


def not_found(
    request: Request[Any, Any, Any], settings: Settings, user: CurrentUser | None, what: str
) -> Response[str]:
    return page(
        request, settings, user, "error.html", status_code=404, title="Not found", message=what
    )


# --- who is asking ------------------------------------------------------------------------


class Answered(Exception):
    """Raised by a page handler's helpers to answer early: sign in first, an expired form."""

    def __init__(self, response: Response[Any]) -> None:
        super().__init__("answered early")
        self.response = response


def _answered(_: Request[Any, Any, Any], exc: Answered) -> Response[Any]:
    return exc.response


async def signed_in(request: Request[Any, Any, Any], settings: Settings) -> CurrentUser | None:
    token = presented_token(request)
    return await user_for_token(settings, token) if token else None


def to_login(request: Request[Any, Any, Any]) -> Redirect:
    target = request.url.path.removeprefix(UI) if request.method == "GET" else "/"
    return Redirect(f"/login?next={quote(target, safe='/')}", status_code=303)


def safe_next(raw: str | None) -> str:
    """Only a path on this site: `next` must never send a signed-in browser elsewhere."""
    value = (raw or "").strip()
    parts = urlsplit(value)
    if (
        not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or parts.scheme
        or parts.netloc
        or any(ord(c) < 0x20 for c in value)
    ):
        return "/"
    return value


async def page_user(request: Request[Any, Any, Any], settings: Settings) -> CurrentUser:
    """The signed-in user; anyone else is sent to the login page."""
    user = await signed_in(request, settings)
    if user is None:
        raise Answered(to_login(request))
    return user


async def form_user(
    request: Request[Any, Any, Any], settings: Settings
) -> tuple[CurrentUser, dict[str, str]]:
    """The signed-in user and their form, which must carry their CSRF token."""
    user = await page_user(request, settings)
    return user, await checked_form(request, settings, user)


async def checked_form(
    request: Request[Any, Any, Any], settings: Settings, user: CurrentUser | None
) -> dict[str, str]:
    """The form, refused (403) unless it carries this browser's token for this session."""
    form = await form_of(request)
    if not csrf_ok(request, settings, user, form):
        raise Answered(expired_form(request, settings, user))
    return form


async def owned_deployment(
    request: Request[Any, Any, Any], settings: Settings, user: CurrentUser, deployment_id: str
) -> dict[str, Any]:
    try:
        return await owned_row(user.id, deployment_id)
    except ApiError as exc:
        raise Answered(not_found(request, settings, user, exc.detail)) from None


async def form_of(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    return {name: value for name, value in form.items() if isinstance(value, str)}


def csrf_ok(
    request: Request[Any, Any, Any],
    settings: Settings,
    user: CurrentUser | None,
    form: Mapping[str, str],
) -> bool:
    nonce = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    return bool(nonce and sent) and hmac.compare_digest(sent, csrf_token(settings, nonce, user))


def expired_form(
    request: Request[Any, Any, Any], settings: Settings, user: CurrentUser | None
) -> Response[str]:
    return page(
        request,
        settings,
        user,
        "error.html",
        status_code=403,
        title="This form has expired",
        message="Go back, reload the page and send the form again.",
    )


# --- accounts -----------------------------------------------------------------------------


def account_page(
    request: Request[Any, Any, Any],
    settings: Settings,
    mode: str,
    *,
    next: str = "/",
    email: str = "",
    error: ApiError | None = None,
) -> Response[str]:
    """The sign-in (`login`) or sign-up (`signup`) form, with what went wrong."""
    return page(
        request,
        settings,
        None,
        "auth.html",
        status_code=error.status_code if error else 200,
        mode=mode,
        next=next,
        email=email,
        error=error.detail if error else None,
    )


@get("/login")
async def login_page(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings], next: FromQuery[str] = "/"
) -> Response[str] | Redirect:
    if await signed_in(request, settings):
        return Redirect(safe_next(next), status_code=303)
    return account_page(request, settings, "login", next=safe_next(next))


@post("/login", status_code=200)
async def login_submit(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Response[str] | Redirect:
    form = await checked_form(request, settings, None)
    target, email = safe_next(form.get("next")), form.get("email", "")
    try:
        user_id = await authenticate(email, form.get("password", ""))
    except ApiError as exc:
        return account_page(request, settings, "login", next=target, email=email, error=exc)
    return await _start(settings, user_id, target)


@get("/signup")
async def signup_page(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Response[str] | Redirect:
    if await signed_in(request, settings):
        return Redirect("/", status_code=303)
    return account_page(request, settings, "signup")


@post("/signup", status_code=200)
async def signup_submit(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Response[str] | Redirect:
    form = await checked_form(request, settings, None)
    email = form.get("email", "")
    try:
        created = await create_user(email, form.get("password", ""))
    except ApiError as exc:
        return account_page(request, settings, "signup", email=email, error=exc)
    return await _start(settings, created.id, "/new")


async def _start(settings: Settings, user_id: int, target: str) -> Redirect:
    token, expires_at = await start_session(settings, user_id)
    return Redirect(target, status_code=303, cookies=[session_cookie(settings, token, expires_at)])


@post("/logout", status_code=200)
async def logout_submit(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Response[str] | Redirect:
    user, _ = await form_user(request, settings)
    await end_session(user)
    return Redirect("/login", status_code=303, cookies=[cleared_cookie(settings)])


# --- projects -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeploymentRow:
    id: str
    short_id: str
    state: str
    target: str
    branch: str | None
    ref: str
    sha: str
    commit_message: str
    created_at: datetime
    took: str
    url: str
    aliases: list[str]
    error: str | None
    production: bool
    promote: str | None
    """`Promote` or `Rollback` when it is ready and not in production, else None."""

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True, slots=True)
class ProjectCard:
    project: ProjectOut
    last: DeploymentRow | None


# What the API shows of a deployment (its private column list), and the commit message.
_COLUMNS = (*deployments.COLUMNS, Deployment.commit_message)


async def deployment_rows(
    settings: Settings, slug: str, where: Any, limit: int = DEPLOYMENTS_SHOWN
) -> list[DeploymentRow]:
    """Deployments as the pages show them, newest first, with production marked."""
    rows = await (
        Deployment.select(*_COLUMNS)
        .where(where)
        .order_by(Deployment.created_at, ascending=False)
        .order_by(Deployment._meta.primary_key, ascending=False)
        .limit(limit)
    )
    ids = [str(row["id"]) for row in rows]
    urls: dict[str, list[str]] = {deployment_id: [] for deployment_id in ids}
    production_id: str | None = None
    production_created: datetime | None = None
    if ids:
        for alias in await (
            Alias.select(Alias.hostname, Alias.deployment)
            .where(Alias.deployment.is_in(ids))
            .order_by(Alias.hostname)
        ):
            urls[str(alias["deployment"])].append(settings.deployment_url(alias["hostname"]))
        current = await (
            Alias.select(Alias.deployment, Alias.deployment.created_at)
            .where(Alias.hostname == hostnames.production_label(slug))
            .first()
        )
        if current is not None:
            production_id = str(current["deployment"])
            production_created = current["deployment.created_at"]
    now = datetime.now(UTC)
    shown = []
    for row in rows:
        deployment_id = str(row["id"])
        end = (
            row["ready_at"] or row["finished_at"] or (None if row["state"] in FINAL_STATES else now)
        )
        took = (end - row["started_at"]).total_seconds() if row["started_at"] and end else None
        production = deployment_id == production_id
        promote = None
        if row["state"] == DeploymentState.READY and not production:
            older = production_created is not None and row["created_at"] < production_created
            promote = "Rollback" if older else "Promote"
        shown.append(
            DeploymentRow(
                id=deployment_id,
                short_id=hostnames.short_id(deployment_id),
                state=str(row["state"]),
                target=str(row["target"]),
                branch=row["branch"],
                ref=str(row["git_ref"]),
                sha=str(row["sha"]),
                commit_message=str(row["commit_message"] or "").split("\n", 1)[0],
                created_at=row["created_at"],
                took=duration(took),
                url=settings.deployment_url(
                    hostnames.deployment_label(str(row["project.slug"]), deployment_id)
                ),
                aliases=urls[deployment_id],
                error=row["error"],
                production=production,
                promote=promote,
            )
        )
    return shown


async def _project_id(user: CurrentUser, slug: str) -> int | None:
    row = await (
        Project.select(Project._meta.primary_key)
        .where((Project.slug == slug) & (Project.owner == user.id))
        .first()
    )
    return None if row is None else int(row["id"])


@get("/")
async def dashboard(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Response[str] | Redirect:
    user = await page_user(request, settings)
    cards = []
    for project in await list_projects(user.id, settings):
        last = await deployment_rows(settings, project.slug, Deployment.project == project.id, 1)
        cards.append(ProjectCard(project, last[0] if last else None))
    return page(request, settings, user, "dashboard.html", cards=cards)


NEW_PROJECT_FIELDS = (
    "name",
    "repo",
    "production_branch",
    "root_directory",
    "install_command",
    "build_command",
    "output_directory",
)


@get("/new")
async def new_project_page(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> Response[str] | Redirect:
    user = await page_user(request, settings)
    values = dict.fromkeys(NEW_PROJECT_FIELDS, "")
    values["production_branch"] = "main"
    return page(request, settings, user, "new_project.html", values=values, errors={})


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
        except ApiError as exc:
            errors[field] = exc.detail
    return errors


@post("/new", status_code=200)
async def new_project_submit(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    engine: NamedDependency[AnyEngine],
    sealer: NamedDependency[Sealer],
) -> Response[str] | Redirect:
    user, form = await form_user(request, settings)
    values = {field: form.get(field, "").strip() for field in NEW_PROJECT_FIELDS}
    errors = project_errors(values, settings)
    if not errors:
        try:
            data = msgspec.convert(
                {name: value for name, value in values.items() if value}, ProjectIn
            )
            created = await create_project(engine, sealer, settings, user.id, data)
        except msgspec.ValidationError as exc:
            # Only the length limits are left to msgspec: the checks above said the rest.
            problem = str(exc)
            field = next((name for name in NEW_PROJECT_FIELDS if f"$.{name}`" in problem), "repo")
            errors[field] = f"{problem.split(' - ')[0]}."
        except ApiError as exc:
            # A taken URL name; anything else create_project refuses also concerns the name.
            errors["name"] = exc.detail
        else:
            return Redirect(f"/projects/{created.slug}", status_code=303)
    return page(
        request, settings, user, "new_project.html", status_code=400, values=values, errors=errors
    )


async def _project_page(
    request: Request[Any, Any, Any],
    settings: Settings,
    user: CurrentUser,
    slug: str,
    *,
    status_code: int = 200,
    deploy_error: str | None = None,
    env_error: str | None = None,
    env_name: str = "",
) -> Response[str]:
    try:
        project = await get_project(user.id, slug, settings)
    except ApiError as exc:
        return not_found(request, settings, user, exc.detail)
    rows = await deployment_rows(settings, slug, Deployment.project == project.id)
    return page(
        request,
        settings,
        user,
        "project.html",
        status_code=status_code,
        project=project,
        deployments=rows,
        github=project.github,
        deploy_error=deploy_error,
        env_error=env_error,
        env_name=env_name,
    )


@get(f"{UI}/projects/{{slug:str}}")
async def project_page(
    request: Request[Any, Any, Any], slug: FromPath[str], settings: NamedDependency[Settings]
) -> Response[str] | Redirect:
    user = await page_user(request, settings)
    return await _project_page(request, settings, user, slug)


@get(f"{UI}/projects/{{slug:str}}/deployments")
async def deployments_fragment(
    request: Request[Any, Any, Any], slug: FromPath[str], settings: NamedDependency[Settings]
) -> Response[str]:
    """The deployments table alone: the project page polls it to keep states live."""
    user = await signed_in(request, settings)
    project_id = await _project_id(user, slug) if user else None
    if user is None or project_id is None:
        return Response("", status_code=404, headers=_PAGE_HEADERS)
    rows = await deployment_rows(settings, slug, Deployment.project == project_id)
    seen = viewer(request, settings, user)
    html = (
        templates()
        .get_template("_deployments.html")
        .render(deployments=rows, csrf=seen.csrf, csrf_field=CSRF_FIELD, slug=slug)
    )
    return Response(html, headers=_PAGE_HEADERS)


@post(f"{UI}/projects/{{slug:str}}/deploy", status_code=200)
async def deploy_submit(
    request: Request[Any, Any, Any],
    slug: FromPath[str],
    settings: NamedDependency[Settings],
    engine: NamedDependency[AnyEngine],
    ref_resolver: NamedDependency[RefResolver],
    pipeline: NamedDependency[Pipeline],
) -> Response[str] | Redirect:
    user, form = await form_user(request, settings)
    try:
        deployment_id = await deployments.deploy_project(
            engine, ref_resolver, pipeline, user.id, slug, form.get("ref")
        )
    except NotFound as exc:
        return not_found(request, settings, user, exc.detail)
    except ApiError as exc:
        return await _project_page(
            request, settings, user, slug, status_code=exc.status_code, deploy_error=exc.detail
        )
    return Redirect(f"/deployments/{deployment_id}", status_code=303)


@post(f"{UI}/projects/{{slug:str}}/env", status_code=200)
async def env_submit(
    request: Request[Any, Any, Any],
    slug: FromPath[str],
    settings: NamedDependency[Settings],
    engine: NamedDependency[AnyEngine],
    sealer: NamedDependency[Sealer],
) -> Response[str] | Redirect:
    """Add or replace one env var, or delete it (`delete` set): values only ever go in."""
    user, form = await form_user(request, settings)
    name = form.get("name", "").strip()
    change: dict[str, str | None] = {name: None if "delete" in form else form.get("value", "")}
    try:
        await update_project(engine, sealer, settings, user.id, slug, ProjectPatch(env=change))
    except ApiError as exc:
        return await _project_page(
            request,
            settings,
            user,
            slug,
            status_code=exc.status_code,
            env_error=exc.detail,
            env_name=name,
        )
    return Redirect(f"/projects/{slug}#env", status_code=303)


# --- deployments --------------------------------------------------------------------------


@get(f"{UI}/deployments/{{deployment_id:str}}")
async def deployment_page(
    request: Request[Any, Any, Any],
    deployment_id: FromPath[str],
    settings: NamedDependency[Settings],
) -> Response[str] | Redirect:
    user = await page_user(request, settings)
    row = await owned_deployment(request, settings, user, deployment_id)
    slug = str(row["project.slug"])
    shown = await deployment_rows(settings, slug, Deployment._meta.primary_key == row["id"], 1)
    return page(
        request,
        settings,
        user,
        "deployment.html",
        slug=slug,
        deployment=shown[0],
        log_url=f"/deployments/{shown[0].id}/logs",
        socket_path=f"/deployments/{shown[0].id}/logs/ws",
    )


@post(f"{UI}/deployments/{{deployment_id:str}}/promote", status_code=200)
async def promote_submit(
    request: Request[Any, Any, Any],
    deployment_id: FromPath[str],
    settings: NamedDependency[Settings],
    engine: NamedDependency[AnyEngine],
    announce_aliases: NamedDependency[AliasAnnouncer],
) -> Response[str] | Redirect:
    user, _ = await form_user(request, settings)
    row = await owned_deployment(request, settings, user, deployment_id)
    slug = str(row["project.slug"])
    if row["state"] != DeploymentState.READY:
        message = f"Only a ready deployment can be promoted; this one is {row['state']}."
        return await _project_page(
            request, settings, user, slug, status_code=409, deploy_error=message
        )
    await deployments.promote_row(engine, announce_aliases, row)
    return Redirect(f"/projects/{slug}", status_code=303)


@post(f"{UI}/deployments/{{deployment_id:str}}/cancel", status_code=200)
async def cancel_submit(
    request: Request[Any, Any, Any],
    deployment_id: FromPath[str],
    settings: NamedDependency[Settings],
    pipeline: NamedDependency[Pipeline],
) -> Response[str] | Redirect:
    user, _ = await form_user(request, settings)
    row = await owned_deployment(request, settings, user, deployment_id)
    if await move(str(row["id"]), UNFINISHED, DeploymentState.CANCELLED, error="cancelled"):
        await pipeline.finish(str(row["id"]))
    return Redirect(f"/deployments/{row['id']}", status_code=303)


ROUTES = [
    Router(
        path="/",
        include_in_schema=False,
        exception_handlers={Answered: _answered},
        route_handlers=[
            dashboard,
            login_page,
            login_submit,
            signup_page,
            signup_submit,
            logout_submit,
            new_project_page,
            new_project_submit,
            project_page,
            deployments_fragment,
            deploy_submit,
            env_submit,
            deployment_page,
            promote_submit,
            cancel_submit,
        ],
    ),
    create_static_files_router(
        path=f"{UI}/static", directories=[HERE / "static"], include_in_schema=False
    ),
]
