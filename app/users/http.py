"""The session over HTTP: the cookie, the bearer token, and the signed-in-user dependency.

The cookie and the bearer token are the same secret (`app.users.service` keeps its hash). An API
token (`app.users.tokens`) works only as a bearer token: a browser never holds one as a cookie.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.di import NamedDependency

from app.errors import ErrorCode, UserError
from app.settings import Settings
from app.users.records import CurrentUser
from app.users.service import SESSION_LIFETIME, ClientAddress, UserService

SESSION_COOKIE = "scalemesh_session"


def session_cookie(settings: Settings, token: str, expires_at: datetime) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path="/",
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def cleared_cookie(settings: Settings) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value="",
        path="/",
        max_age=0,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def bearer_token(request: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def signed_in(
    request: ASGIConnection[Any, Any, Any, Any], users: UserService
) -> CurrentUser | None:
    token = bearer_token(request)
    if token:
        return await users.user_for_token(token)
    cookie = request.cookies.get(SESSION_COOKIE)
    return await users.user_for_token(cookie, api_tokens=False) if cookie else None


def client_address(request: ASGIConnection[Any, Any, Any, Any]) -> ClientAddress:
    """The peer's address as the server saw it (behind a proxy: as uvicorn was told to trust)."""
    return ClientAddress(request.client.host if request.client else "")


async def provide_user(
    request: Request[Any, Any, Any], users: NamedDependency[UserService]
) -> CurrentUser:
    """The signed-in user, or a 401 for every route that depends on this."""
    user = await signed_in(request, users)
    if user is None:
        raise UserError(
            ErrorCode.NOT_SIGNED_IN,
            "Sign in first: POST /user/login, then send the cookie or the token.",
        )
    return user
