"""The dashboard's page plumbing: routing browsers to pages, rendering, CSRF, who is asking.

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
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.enums import ScopeType
from litestar.response import Redirect
from litestar.types import ASGIApp, Receive, Scope, Send

from app.settings import Settings
from app.users.http import signed_in
from app.users.records import CurrentUser
from app.users.service import UserService

UI = "/ui"
"""Where page handlers, form actions and static files live; browsers rarely see it."""
CSRF_COOKIE = "scalemesh_csrf"
CSRF_FIELD = "csrf"
APP_DIR = Path(__file__).resolve().parent.parent
_SHARED_PATHS = re.compile(r"^/(?:projects|deployments)/[^/]+$")
PAGE_HEADERS = {
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


@functools.cache
def templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(APP_DIR / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["ago"] = ago
    environment.filters["clock"] = clock
    environment.filters["account_name"] = account_name
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


_GITHUB_NOREPLY = re.compile(r"^\d+\+([A-Za-z0-9-]+)@users\.noreply\.github\.com$")


def account_name(email: str) -> str:
    """How the header names an account: the GitHub login of one made by signing in with
    GitHub (its address is GitHub's no-reply one), else the email."""
    match = _GITHUB_NOREPLY.match(email)
    return f"@{match[1]}" if match else email


def clock(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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
    return csrf_tokens(settings, nonce, user)[0]


def csrf_tokens(settings: Settings, nonce: str, user: CurrentUser | None) -> list[str]:
    """The form token under each secret key, the signing key's first: a page rendered before
    the latest key rotation still posts."""
    session = user.token_hash if user else ""
    return settings.require_secret_keys().macs(f"csrf|{nonce}|{session}".encode())


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
    return Response(html, status_code=status_code, headers=PAGE_HEADERS, cookies=sent)


def not_found(
    request: Request[Any, Any, Any], settings: Settings, user: CurrentUser | None, what: str
) -> Response[str]:
    return page(
        request, settings, user, "error.html", status_code=404, title="Not found", message=what
    )


class Answered(Exception):
    """Raised by a page handler's helpers to answer early: sign in first, an expired form."""

    def __init__(self, response: Response[Any]) -> None:
        super().__init__("answered early")
        self.response = response


def answered(_: Request[Any, Any, Any], exc: Answered) -> Response[Any]:
    return exc.response


def to_login(request: Request[Any, Any, Any]) -> Redirect:
    target = request.url.path.removeprefix(UI) if request.method == "GET" else "/"
    return Redirect(f"/login?next={quote(target, safe='/')}", status_code=303)


async def page_user(request: Request[Any, Any, Any], users: UserService) -> CurrentUser:
    """The signed-in user; anyone else is sent to the login page."""
    user = await signed_in(request, users)
    if user is None:
        raise Answered(to_login(request))
    return user


async def form_user(
    request: Request[Any, Any, Any], settings: Settings, users: UserService
) -> tuple[CurrentUser, dict[str, str]]:
    """The signed-in user and their form, which must carry their CSRF token."""
    user = await page_user(request, users)
    return user, await checked_form(request, settings, user)


async def checked_form(
    request: Request[Any, Any, Any], settings: Settings, user: CurrentUser | None
) -> dict[str, str]:
    """The form, refused (403) unless it carries this browser's token for this session."""
    form = await form_of(request)
    if not csrf_ok(request, settings, user, form):
        raise Answered(expired_form(request, settings, user))
    return form


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
    return bool(nonce and sent) and any(
        hmac.compare_digest(sent, token) for token in csrf_tokens(settings, nonce, user)
    )


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
