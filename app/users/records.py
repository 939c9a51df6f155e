"""Accounts and sessions as frozen records, read from their rows in one place."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.tables import Session, User


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    email: str
    is_admin: bool

    COLUMNS = (User._meta.primary_key, User.email, User.is_admin)

    @classmethod
    def of(cls, row: dict[str, Any]) -> UserRecord:
        return cls(id=int(row["id"]), email=str(row["email"]), is_admin=bool(row["is_admin"]))


@dataclass(frozen=True, slots=True)
class StoredPassword:
    """What a sign-in checks a password against."""

    user_id: int
    password_hash: str

    COLUMNS = (User._meta.primary_key, User.password_hash)

    @classmethod
    def of(cls, row: dict[str, Any]) -> StoredPassword:
        return cls(user_id=int(row["id"]), password_hash=str(row["password_hash"]))


class Credential(StrEnum):
    """What a caller presented: a sign-in's session, or an API token made for CI."""

    SESSION = "session"
    API_TOKEN = "api_token"  # noqa: S105 - a kind of credential, not one


@dataclass(frozen=True, slots=True)
class CurrentUser:
    """Who is calling: a signed-in user and the session (or API token) they presented."""

    id: int
    email: str
    token_hash: str
    is_admin: bool = False
    credential: Credential = Credential.SESSION

    COLUMNS = (Session.user, Session.user.email, Session.user.is_admin, Session.token_hash)

    @classmethod
    def of(cls, row: dict[str, Any], credential: Credential = Credential.SESSION) -> CurrentUser:
        """From a row with `user`, `user.email`, `user.is_admin` and `token_hash` (a session's
        or a token's: the hash under whichever key of the ring it was made with)."""
        return cls(
            id=int(row["user"]),
            email=str(row["user.email"]),
            token_hash=str(row["token_hash"]),
            is_admin=bool(row["user.is_admin"]),
            credential=credential,
        )
