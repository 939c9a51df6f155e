"""API tokens for CI and scripts: create one (shown once), list, revoke, and find its user.

An API token is a bearer token like a session's, but named, made on purpose and kept until it
expires or is deleted. Only its keyed hash is stored (the same HMAC as sessions), so a copy of
the database cannot be used to call the API. It never works as a cookie (`app.users.http`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.errors import ErrorCode, UserError
from app.tables import ApiToken
from app.users.records import Credential, CurrentUser

TOKEN_PREFIX = "smt_"  # noqa: S105 - a marker that makes leaked tokens easy to recognise
MAX_NAME = 100
MAX_DAYS = 3650
MAX_TOKENS_PER_USER = 100
USE_RECORDED_EVERY = timedelta(minutes=1)
"""`last_used_at` is written at most this often per token, not on every request."""


@dataclass(frozen=True, slots=True)
class ApiTokenRecord:
    """A token as its owner may see it: never the token itself."""

    id: int
    name: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None

    COLUMNS = (
        ApiToken._meta.primary_key,
        ApiToken.name,
        ApiToken.created_at,
        ApiToken.expires_at,
        ApiToken.last_used_at,
    )

    @classmethod
    def of(cls, row: dict[str, Any]) -> ApiTokenRecord:
        return cls(
            id=int(row["id"]),
            name=str(row["name"]),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            last_used_at=row["last_used_at"],
        )


@dataclass(frozen=True, slots=True)
class NewApiToken:
    """A token just made: `token` is shown this once and never stored."""

    record: ApiTokenRecord
    token: str


def check_name(raw: str) -> str:
    name = raw.strip()
    if not name or len(name) > MAX_NAME or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise UserError(
            ErrorCode.INVALID_NAME,
            f"A token's name is 1 to {MAX_NAME} printable characters, e.g. 'GitLab CI'.",
        )
    return name


def check_days(days: int | None) -> timedelta | None:
    if days is None:
        return None
    if not 1 <= days <= MAX_DAYS:
        raise UserError(
            ErrorCode.INVALID_REQUEST,
            f"expires_in_days must be between 1 and {MAX_DAYS}, or null for no expiry.",
        )
    return timedelta(days=days)


class ApiTokens:
    """Each user's API tokens; `token_hashes` is `UserService.token_hashes` (keyed by the
    secret keys, the signing key's first)."""

    def __init__(self, token_hashes: Callable[[str], list[str]]) -> None:
        self._hashes = token_hashes

    async def create(
        self, user: CurrentUser, name: str, expires_in_days: int | None
    ) -> NewApiToken:
        name = check_name(name)
        lifetime = check_days(expires_in_days)
        if await ApiToken.count().where(ApiToken.user == user.id) >= MAX_TOKENS_PER_USER:
            raise UserError(
                ErrorCode.INVALID_REQUEST,
                f"You have {MAX_TOKENS_PER_USER} API tokens; delete one you no longer use first.",
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        rows = await ApiToken.insert(
            ApiToken(
                user=user.id,
                name=name,
                token_hash=self._hashes(token)[0],
                created_at=now,
                expires_at=None if lifetime is None else now + lifetime,
            )
        ).returning(*ApiTokenRecord.COLUMNS)
        return NewApiToken(ApiTokenRecord.of(rows[0]), token)

    async def list(self, user: CurrentUser) -> list[ApiTokenRecord]:
        rows = await (
            ApiToken.select(*ApiTokenRecord.COLUMNS)
            .where(ApiToken.user == user.id)
            .order_by(ApiToken._meta.primary_key)
        )
        return [ApiTokenRecord.of(row) for row in rows]

    async def delete(self, user: CurrentUser, token_id: int) -> None:
        """Revoke one of the user's tokens; another user's answers as a missing one does."""
        deleted = (
            await ApiToken.delete()
            .where((ApiToken._meta.primary_key == token_id) & (ApiToken.user == user.id))
            .returning(ApiToken._meta.primary_key)
        )
        if not deleted:
            raise UserError(ErrorCode.TOKEN_NOT_FOUND, f"You have no API token {token_id}.")

    async def user_for(self, token: str) -> CurrentUser | None:
        """The user a live API token belongs to, else None; notes when it was used."""
        now = datetime.now(UTC)
        row = (
            await ApiToken.select(
                ApiToken._meta.primary_key,
                ApiToken.token_hash,
                ApiToken.last_used_at,
                ApiToken.user,
                ApiToken.user.email,
                ApiToken.user.is_admin,
            )
            .where(
                ApiToken.token_hash.is_in(self._hashes(token))
                & (ApiToken.expires_at.is_null() | (ApiToken.expires_at > now))
            )
            .first()
        )
        if row is None:
            return None
        last_used: datetime | None = row["last_used_at"]
        if last_used is None or last_used <= now - USE_RECORDED_EVERY:
            await ApiToken.update({ApiToken.last_used_at: now}).where(
                ApiToken._meta.primary_key == row["id"]
            )
        return CurrentUser.of(row, Credential.API_TOKEN)
