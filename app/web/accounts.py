"""The account pages: sign in, sign up and sign out in a browser."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect

from app.errors import ErrorCode, UserError
from app.http.errors import status_of
from app.local_paths import local_path
from app.settings import Settings
from app.users.http import cleared_cookie, client_address, session_cookie, signed_in
from app.users.service import SIGNUP_CLOSED, UserService
from app.web.pages import checked_form, form_user, page


def account_page(
    request: Request[Any, Any, Any],
    settings: Settings,
    mode: str,
    *,
    signup_open: bool,
    next: str = "/",
    email: str = "",
    error: UserError | None = None,
) -> Response[str]:
    """The sign-in (`login`) or sign-up (`signup`) form, with what went wrong; with sign-up
    closed, no link to it and, on its page, only why."""
    return page(
        request,
        settings,
        None,
        "auth.html",
        status_code=status_of(error) if error else 200,
        mode=mode,
        signup_open=signup_open,
        next=next,
        email=email,
        error=error.detail if error else None,
        github=settings.oauth is not None,
    )


@get("/login")
async def login_page(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    users: NamedDependency[UserService],
    next: FromQuery[str] = "/",
) -> Response[str] | Redirect:
    if await signed_in(request, users):
        return Redirect(local_path(next), status_code=303)
    return account_page(
        request, settings, "login", next=local_path(next), signup_open=await users.signup_open()
    )


@post("/login", status_code=200)
async def login_submit(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    users: NamedDependency[UserService],
) -> Response[str] | Redirect:
    form = await checked_form(request, settings, None)
    target, email = local_path(form.get("next")), form.get("email", "")
    try:
        user_id = await users.authenticate(email, form.get("password", ""), client_address(request))
    except UserError as exc:
        return account_page(
            request,
            settings,
            "login",
            next=target,
            email=email,
            error=exc,
            signup_open=await users.signup_open(),
        )
    return await _start(settings, users, user_id, target)


@get("/signup")
async def signup_page(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    users: NamedDependency[UserService],
) -> Response[str] | Redirect:
    if await signed_in(request, users):
        return Redirect("/", status_code=303)
    if not await users.signup_open():
        closed = UserError(ErrorCode.SIGNUP_CLOSED, SIGNUP_CLOSED)
        return account_page(request, settings, "signup", signup_open=False, error=closed)
    return account_page(request, settings, "signup", signup_open=True)


@post("/signup", status_code=200)
async def signup_submit(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    users: NamedDependency[UserService],
) -> Response[str] | Redirect:
    form = await checked_form(request, settings, None)
    email = form.get("email", "")
    try:
        created = await users.sign_up(email, form.get("password", ""))
    except UserError as exc:
        still_open = await users.signup_open()
        return account_page(
            request, settings, "signup", email=email, error=exc, signup_open=still_open
        )
    return await _start(settings, users, created.id, "/new")


async def _start(settings: Settings, users: UserService, user_id: int, target: str) -> Redirect:
    token, expires_at = await users.start_session(user_id)
    return Redirect(target, status_code=303, cookies=[session_cookie(settings, token, expires_at)])


@post("/logout", status_code=200)
async def logout_submit(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    users: NamedDependency[UserService],
) -> Response[str] | Redirect:
    user, _ = await form_user(request, settings, users)
    await users.end_session(user)
    return Redirect("/login", status_code=303, cookies=[cleared_cookie(settings)])


ROUTES = [login_page, login_submit, signup_page, signup_submit, logout_submit]
