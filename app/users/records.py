"""Accounts and sessions as frozen records, read from their rows in one place."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class CurrentUser:
    """Who is calling: a signed-in user and the session they presented."""

    id: int
    email: str
    token_hash: str
    is_admin: bool = False

    COLUMNS = (Session.user, Session.user.email, Session.user.is_admin)

    @classmethod
    def of(cls, row: dict[str, Any], token_hash: str) -> CurrentUser:
        return cls(
            id=int(row["user"]),
            email=str(row["user.email"]),
            token_hash=token_hash,
            is_admin=bool(row["user.is_admin"]),
        )
