"""Who is calling: password hashes, server-side sessions, and the signed-in-user dependency.

A session is one random token, presented either as the `scalemesh_session` cookie or as
`Authorization: Bearer <token>`. Only a keyed hash of it is stored, so deleting the row revokes
it at once and a copy of the database alone cannot be used to sign in.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.di import NamedDependency

from app.errors import Unauthorized
from app.settings import Settings
from app.tables import Session, User

SESSION_COOKIE = "scalemesh_session"
SESSION_LIFETIME = timedelta(days=30)

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so both failures cost the same time."""
    return _hasher.hash("scalemesh-timing-equaliser")


@dataclass(frozen=True, slots=True)
class CurrentUser:
    id: int
    email: str
    token_hash: str


async def hash_password(password: str) -> str:
    # Argon2 takes ~100 ms of CPU on purpose; keep it off the event loop.
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(check)


def token_hash(settings: Settings, token: str) -> str:
    key = settings.secret_key.reveal().encode()
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


async def start_session(settings: Settings, user_id: int) -> tuple[str, datetime]:
    """Create a session for the user; return its token (shown once) and expiry."""
    token = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + SESSION_LIFETIME
    await Session.insert(
        Session(user=user_id, token_hash=token_hash(settings, token), expires_at=expires_at)
    )
    return token, expires_at


async def end_session(user: CurrentUser) -> None:
    await Session.delete().where(Session.token_hash == user.token_hash)


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


def presented_token(request: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The bearer token, else the session cookie (HTTP requests and websockets alike)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(SESSION_COOKIE) or None


async def user_for_token(settings: Settings, token: str) -> CurrentUser | None:
    digest = token_hash(settings, token)
    row = (
        await Session.select(Session.user, Session.user.email)
        .where((Session.token_hash == digest) & (Session.expires_at > datetime.now(UTC)))
        .first()
    )
    if row is None:
        return None
    return CurrentUser(id=int(row["user"]), email=str(row["user.email"]), token_hash=digest)


async def provide_user(
    request: Request[Any, Any, Any], settings: NamedDependency[Settings]
) -> CurrentUser:
    """The signed-in user, or a 401 for every route that depends on this."""
    token = presented_token(request)
    user = await user_for_token(settings, token) if token else None
    if user is None:
        raise Unauthorized("Sign in first: POST /user/login, then send the cookie or the token.")
    return user


async def find_user(email: str) -> tuple[int, str] | None:
    row = (
        await User.select(User._meta.primary_key, User.password_hash)
        .where(User.email == email)
        .first()
    )
    if row is None:
        return None
    return int(row["id"]), str(row["password_hash"])
