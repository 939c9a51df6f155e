"""Accounts over the API: sign up, sign in, sign out, who am I (`/user/*`), and an admin adding
accounts (`POST /users`): glue over `UserService`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from app.settings import Settings
from app.users.http import cleared_cookie, client_address, provide_user, session_cookie
from app.users.records import CurrentUser
from app.users.service import EMAIL, MAX_PASSWORD, MIN_PASSWORD, UserService

# Documented in the OpenAPI schema only ("extra"): the service's checks give friendlier messages.
Email = Annotated[
    str,
    msgspec.Meta(
        max_length=254,
        extra_json_schema={"extra": {"pattern": EMAIL.pattern, "format": "email"}},
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


class NewAccountIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: NewPassword
    admin: bool = False


class UserOut(msgspec.Struct):
    id: int
    email: str
    is_admin: bool


class TokenOut(msgspec.Struct):
    token: str
    expires_at: datetime


class UserController(Controller):
    path = "/user"

    @post("/signup", status_code=201, summary="Create an account")
    async def signup(
        self, data: JSONBody[SignupIn], users: NamedDependency[UserService]
    ) -> UserOut:
        created = await users.sign_up(data.email, data.password)
        return UserOut(id=created.id, email=created.email, is_admin=created.is_admin)

    @get("/", dependencies={"user": Provide(provide_user)}, summary="Who is signed in")
    async def me(self, user: NamedDependency[CurrentUser]) -> UserOut:
        return UserOut(id=user.id, email=user.email, is_admin=user.is_admin)

    @post("/login", status_code=200, summary="Sign in: a session cookie and a bearer token")
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[Credentials],
        users: NamedDependency[UserService],
        settings: NamedDependency[Settings],
    ) -> Response[TokenOut]:
        user_id = await users.authenticate(data.email, data.password, client_address(request))
        token, expires_at = await users.start_session(user_id)
        return Response(
            TokenOut(token=token, expires_at=expires_at),
            cookies=[session_cookie(settings, token, expires_at)],
        )

    @post(
        "/logout",
        status_code=204,
        dependencies={"user": Provide(provide_user)},
        summary="Sign out: the session stops working at once",
    )
    async def logout(
        self,
        user: NamedDependency[CurrentUser],
        users: NamedDependency[UserService],
        settings: NamedDependency[Settings],
    ) -> Response[None]:
        await users.end_session(user)
        return Response(None, status_code=204, cookies=[cleared_cookie(settings)])


class AccountsController(Controller):
    path = "/users"
    dependencies = {"user": Provide(provide_user)}  # noqa: RUF012 - Litestar's own class attribute

    @post("/", status_code=201, summary="Add an account (admins only)")
    async def add(
        self,
        data: JSONBody[NewAccountIn],
        user: NamedDependency[CurrentUser],
        users: NamedDependency[UserService],
    ) -> UserOut:
        created = await users.add_account(user, data.email, data.password, admin=data.admin)
        return UserOut(id=created.id, email=created.email, is_admin=created.is_admin)
