"""Sign up, sign in and sign out (`/user/*`), with failed sign-ins slowed down per email."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec
from litestar import Response, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from app.auth import (
    CurrentUser,
    cleared_cookie,
    end_session,
    find_user,
    hash_password,
    provide_user,
    session_cookie,
    start_session,
    verify_password,
)
from app.errors import Conflict, InvalidRequest, TooManyRequests, Unauthorized
from app.settings import Settings
from app.tables import LoginFailure, User

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
FAILURE_WINDOW = timedelta(minutes=1)
MAX_FAILURES_PER_WINDOW = 10
WRONG_CREDENTIALS = "Wrong email or password."
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# Documented in the OpenAPI schema only ("extra"), so the checks below give the friendlier message.
Email = Annotated[
    str,
    msgspec.Meta(
        max_length=254,
        extra_json_schema={"extra": {"pattern": _EMAIL.pattern, "format": "email"}},
    ),
]
NewPassword = Annotated[
    str,
    msgspec.Meta(max_length=MAX_PASSWORD, extra_json_schema={"extra": {"minLength": MIN_PASSWORD}}),
]


class SignupIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: NewPassword


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    """Sign-in fields are not constrained: any bad pair gets the same 401."""

    email: Annotated[str, msgspec.Meta(max_length=1024)]
    password: Annotated[str, msgspec.Meta(max_length=MAX_PASSWORD)]


class UserOut(msgspec.Struct):
    id: int
    email: str


class TokenOut(msgspec.Struct):
    token: str
    expires_at: datetime


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise InvalidRequest(f"{raw!r} is not an email address.")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"The password must be at least {MIN_PASSWORD} characters long.")
    if len(password) > MAX_PASSWORD:
        raise InvalidRequest(f"The password must be at most {MAX_PASSWORD} characters long.")


async def create_user(email: str, password: str) -> UserOut:
    """Create an account; the email must be free."""
    email = normalise_email(email)
    check_password(password)
    if await User.exists().where(User.email == email):
        raise Conflict(f"An account for {email} already exists; sign in instead.")
    rows = await User.insert(User(email=email, password_hash=await hash_password(password)))
    return UserOut(id=int(rows[0]["id"]), email=email)


async def authenticate(email: str, password: str) -> int:
    """Return the user id for good credentials; one message for every kind of bad ones."""
    try:
        email = normalise_email(email)
    except InvalidRequest:
        raise Unauthorized(WRONG_CREDENTIALS) from None
    await _refuse_when_throttled(email)
    found = await find_user(email)
    if not await verify_password(found[1] if found else None, password) or found is None:
        await LoginFailure.insert(LoginFailure(email=email))
        raise Unauthorized(WRONG_CREDENTIALS)
    await LoginFailure.delete().where(LoginFailure.email == email)
    return found[0]


async def _refuse_when_throttled(email: str) -> None:
    now = datetime.now(UTC)
    since = now - FAILURE_WINDOW
    # Old failures count for nobody; dropping them all keeps the table small.
    await LoginFailure.delete().where(LoginFailure.failed_at <= since)
    recent = await (
        LoginFailure.select(LoginFailure.failed_at)
        .where(LoginFailure.email == email)
        .order_by(LoginFailure.failed_at)
    )
    if len(recent) >= MAX_FAILURES_PER_WINDOW:
        oldest: datetime = recent[0]["failed_at"]
        retry_after = max(1, int((oldest + FAILURE_WINDOW - now).total_seconds()) + 1)
        raise TooManyRequests(
            f"Too many failed sign-ins for {email}; wait {retry_after} seconds and try again.",
            headers={"Retry-After": str(retry_after)},
        )


@post("/user/signup", status_code=201, summary="Create an account")
async def signup(data: JSONBody[SignupIn]) -> UserOut:
    return await create_user(data.email, data.password)


@post("/user/login", status_code=200, summary="Sign in: a session cookie and a bearer token")
async def login(
    data: JSONBody[Credentials], settings: NamedDependency[Settings]
) -> Response[TokenOut]:
    user_id = await authenticate(data.email, data.password)
    token, expires_at = await start_session(settings, user_id)
    return Response(
        TokenOut(token=token, expires_at=expires_at),
        cookies=[session_cookie(settings, token, expires_at)],
    )


@post(
    "/user/logout",
    status_code=204,
    dependencies={"user": Provide(provide_user)},
    summary="Sign out: the session stops working at once",
)
async def logout(
    user: NamedDependency[CurrentUser], settings: NamedDependency[Settings]
) -> Response[None]:
    await end_session(user)
    return Response(None, status_code=204, cookies=[cleared_cookie(settings)])


ROUTES = [signup, login, logout]
