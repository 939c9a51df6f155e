"""API tokens over the API (`/tokens`): make one for CI, list them, revoke one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, Parameter

from app.users.http import provide_user
from app.users.records import CurrentUser
from app.users.tokens import MAX_DAYS, MAX_NAME, ApiTokenRecord, ApiTokens

MAX_ID = 2**31 - 1
"""The largest id a table's serial key holds: a larger one is no token, not a database error."""


class NewTokenIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=MAX_NAME)]
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=MAX_DAYS)] | None = None
    """None (or left out): the token works until it is deleted."""


class NewTokenOut(msgspec.Struct):
    id: int
    name: str
    token: str
    """Shown this once: only its hash is kept."""
    created_at: datetime
    expires_at: datetime | None


class TokenOut(msgspec.Struct):
    id: int
    name: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


def _out(record: ApiTokenRecord) -> TokenOut:
    return TokenOut(
        id=record.id,
        name=record.name,
        created_at=record.created_at,
        expires_at=record.expires_at,
        last_used_at=record.last_used_at,
    )


class TokenController(Controller):
    path = "/tokens"
    dependencies = {"user": Provide(provide_user)}  # noqa: RUF012 - Litestar's own class attribute

    @post("/", status_code=201, summary="Make an API token (shown once), e.g. for CI")
    async def create(
        self,
        data: JSONBody[NewTokenIn],
        user: NamedDependency[CurrentUser],
        api_tokens: NamedDependency[ApiTokens],
    ) -> NewTokenOut:
        made = await api_tokens.create(user, data.name, data.expires_in_days)
        return NewTokenOut(
            id=made.record.id,
            name=made.record.name,
            token=made.token,
            created_at=made.record.created_at,
            expires_at=made.record.expires_at,
        )

    @get("/", summary="Your API tokens (never the tokens themselves)")
    async def list_tokens(
        self, user: NamedDependency[CurrentUser], api_tokens: NamedDependency[ApiTokens]
    ) -> list[TokenOut]:
        return [_out(record) for record in await api_tokens.list(user)]

    @delete("/{token_id:int}", status_code=204, summary="Revoke an API token")
    async def revoke(
        self,
        token_id: Annotated[int, Parameter(ge=1, le=MAX_ID)],
        user: NamedDependency[CurrentUser],
        api_tokens: NamedDependency[ApiTokens],
    ) -> Response[None]:
        await api_tokens.delete(user, token_id)
        return Response(None, status_code=204)
