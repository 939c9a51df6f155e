"""`/auth/github/*`: "Sign in with GitHub" over HTTP, glue over `GitHubSignIn`.

The web flow is two browser navigations (`GET /auth/github`, then GitHub sends the browser to
`GET /auth/github/callback`), so their refusals are HTML pages for a browser; the device flow
(`POST /auth/github/device`, `POST /auth/github/device/token`) is for the CLI and answers JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect

from app.auth.service import STATE_LIFETIME, GitHubSignIn
from app.errors import ErrorCode, UserError
from app.http.errors import status_of
from app.settings import Settings
from app.users.http import session_cookie
from app.web.pages import page

STATE_COOKIE = "scalemesh_oauth_state"
STATE_COOKIE_PATH = "/auth/github"
NOT_CONFIGURED = (
    "Sign in with GitHub is not set up on this server: its admin sets "
    "SCALEMESH_GITHUB_CLIENT_ID and SCALEMESH_GITHUB_CLIENT_SECRET."
)


class DeviceOut(msgspec.Struct):
    user_code: str
    verification_uri: str
    device_code: str
    interval: int
    expires_in: int


class DeviceTokenIn(msgspec.Struct, forbid_unknown_fields=True):
    device_code: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class SessionOut(msgspec.Struct):
    token: str
    expires_at: datetime


def state_cookie(settings: Settings, value: str, *, clear: bool = False) -> Cookie:
    """The state, for the callback only; Lax, since GitHub's redirect is a cross-site GET."""
    return Cookie(
        key=STATE_COOKIE,
        value="" if clear else value,
        path=STATE_COOKIE_PATH,
        max_age=0 if clear else int(STATE_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def configured(sign_in: GitHubSignIn | None) -> GitHubSignIn:
    if sign_in is None:
        raise UserError(ErrorCode.GITHUB_NOT_CONFIGURED, NOT_CONFIGURED)
    return sign_in


def refusal_page(
    request: Request[Any, Any, Any], settings: Settings, exc: UserError, cookies: list[Cookie]
) -> Response[Any]:
    """The refusal as a page for a browser (it navigated here), as JSON for anyone else."""
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
    if "text/html" not in request.headers.get("accept", ""):
        body = {"error": exc.kind.value, "detail": exc.detail}
        return Response(body, status_code=status_of(exc), cookies=cookies, headers=headers)
    return page(
        request,
        settings,
        None,
        "error.html",
        status_code=status_of(exc),
        cookies=cookies,
        title="Sign in with GitHub did not work",
        message=exc.detail,
        retry="/login",
    )


class GitHubSignInController(Controller):
    path = "/auth/github"

    @get("/", summary="Sign in with GitHub: go to GitHub to authorize", status_code=302)
    async def start(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        github_sign_in: NamedDependency[GitHubSignIn | None],
        next: FromQuery[str] = "/",
    ) -> Response[Any]:
        try:
            started = await configured(github_sign_in).start(next)
        except UserError as exc:
            return refusal_page(request, settings, exc, [])
        return Redirect(
            started.authorize_url,
            status_code=302,
            cookies=[state_cookie(settings, started.state)],
        )

    @get("/callback", summary="Where GitHub sends the browser back", status_code=302)
    async def callback(
        self,
        request: Request[Any, Any, Any],
        settings: NamedDependency[Settings],
        github_sign_in: NamedDependency[GitHubSignIn | None],
        code: FromQuery[str | None] = None,
        oauth_state: Annotated[str | None, QueryParameter(name="state")] = None,
        setup_action: FromQuery[str | None] = None,
    ) -> Response[Any]:
        cleared = state_cookie(settings, "", clear=True)
        if oauth_state is None and setup_action is not None:
            # Back from installing the App (`request_oauth_on_install`): GitHub sends no state,
            # so this code cannot be told from a forged one. Sign in properly instead; GitHub
            # approves at once, since the user has just authorized the App.
            return Redirect(f"{STATE_COOKIE_PATH}?next=/", status_code=302, cookies=[cleared])
        try:
            done = await configured(github_sign_in).finish(
                oauth_state, request.cookies.get(STATE_COOKIE), code
            )
        except UserError as exc:
            return refusal_page(request, settings, exc, [cleared])
        return Redirect(
            done.next_path,
            status_code=302,
            cookies=[cleared, session_cookie(settings, done.token, done.expires_at)],
        )

    @post("/device", status_code=200, summary="Start a device sign-in (for the CLI)")
    async def device(self, github_sign_in: NamedDependency[GitHubSignIn | None]) -> DeviceOut:
        code = await configured(github_sign_in).start_device()
        return DeviceOut(
            user_code=code.user_code,
            verification_uri=code.verification_uri,
            device_code=code.device_code,
            interval=code.interval,
            expires_in=code.expires_in,
        )

    @post("/device/token", status_code=200, summary="A session once the device code is approved")
    async def device_token(
        self,
        data: JSONBody[DeviceTokenIn],
        github_sign_in: NamedDependency[GitHubSignIn | None],
    ) -> SessionOut:
        done = await configured(github_sign_in).poll_device(data.device_code)
        return SessionOut(token=done.token, expires_at=done.expires_at)
