"""The GitHub identity linked to an account, and its user token: stored sealed, kept fresh.

A user token is what access checks ask GitHub with (`app.projects.access`). It is sealed with
AES-256-GCM under its own key derived from `SCALEMESH_SECRET_KEY`, with the account id and the
field as associated data, so a sealed token copied to another account does not open. Expiring
tokens are refreshed with their refresh token shortly before they expire; GitHub's refresh
tokens work once, so when two replicas refresh at once the loser reads the winner's token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.github.api import GitHubError
from app.github.oauth_api import GitHubUser, GitHubUsersApi, UserToken
from app.sealing import Box, Unopenable
from app.settings_parts import KeyRing
from app.tables import GitHubAccount

log = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)
"""A token with less than this left is refreshed before use."""


class TokenSealer:
    """Seals and opens GitHub user tokens, bound to the account and the field they belong to."""

    def __init__(self, keys: KeyRing) -> None:
        self._box = Box(keys, b"scalemesh github tokens v1")

    def seal(self, user_id: int, what: str, value: str) -> bytes:
        return self._box.seal(_aad(user_id, what), value)

    def open(self, user_id: int, what: str, blob: bytes) -> str | None:
        """The value, or None when it does not open (another key, another account)."""
        try:
            return self._box.open(_aad(user_id, what), blob)
        except Unopenable:
            return None


def _aad(user_id: int, what: str) -> bytes:
    return f"github-user:{user_id}:{what}".encode()


@dataclass(frozen=True, slots=True)
class LinkedAccount:
    """The GitHub identity an account signed in with."""

    user_id: int
    github_id: int
    login: str


@dataclass(frozen=True, slots=True)
class _Stored:
    account: LinkedAccount
    token: bytes = field(repr=False)
    expires_at: datetime | None
    refresh: bytes | None = field(repr=False)
    refresh_expires_at: datetime | None

    COLUMNS = (
        GitHubAccount.user,
        GitHubAccount.github_id,
        GitHubAccount.login,
        GitHubAccount.token_sealed,
        GitHubAccount.token_expires_at,
        GitHubAccount.refresh_sealed,
        GitHubAccount.refresh_expires_at,
    )

    @classmethod
    def of(cls, row: dict[str, Any]) -> _Stored:
        refresh = row["refresh_sealed"]
        return cls(
            account=LinkedAccount(int(row["user"]), int(row["github_id"]), str(row["login"])),
            token=bytes(row["token_sealed"]),
            expires_at=row["token_expires_at"],
            refresh=None if refresh is None else bytes(refresh),
            refresh_expires_at=row["refresh_expires_at"],
        )


class UserTokens:
    """Where each account's GitHub identity and token live. `github` is None when "Sign in with
    GitHub" is not configured: then no account has a usable token."""

    def __init__(self, keys: KeyRing, github: GitHubUsersApi | None) -> None:
        self._sealer = TokenSealer(keys)
        self._github = github

    async def account_of_github_user(self, github_id: int) -> LinkedAccount | None:
        row = await (
            GitHubAccount.select(*_Stored.COLUMNS)
            .where(GitHubAccount.github_id == github_id)
            .first()
        )
        return None if row is None else _Stored.of(row).account

    async def save(self, user_id: int, user: GitHubUser, token: UserToken) -> None:
        """Link the account to `user` (a new link, or a fresh token for the same one)."""
        values = self._values(user_id, token) | {
            GitHubAccount.github_id: user.id,
            GitHubAccount.login: user.login,
        }
        updated = await (
            GitHubAccount.update(values)
            .where(GitHubAccount.user == user_id)
            .returning(GitHubAccount.user)
        )
        if not updated:
            await GitHubAccount.insert(
                GitHubAccount(
                    **{column._meta.name: value for column, value in values.items()}, user=user_id
                )
            )

    async def token_for(self, user_id: int) -> str | None:
        """A live token for the account's GitHub user, refreshed first when it is about to
        expire; None without a linked GitHub identity, or once GitHub stopped honouring it."""
        stored = await _stored(user_id)
        if stored is None:
            return None
        now = datetime.now(UTC)
        if stored.expires_at is None or stored.expires_at - REFRESH_MARGIN > now:
            return self._sealer.open(user_id, "token", stored.token)
        return await self._refreshed(stored, now)

    async def _refreshed(self, stored: _Stored, now: datetime) -> str | None:
        user_id = stored.account.user_id
        refresh = (
            None
            if stored.refresh is None
            else self._sealer.open(user_id, "refresh", stored.refresh)
        )
        alive = stored.refresh_expires_at is None or stored.refresh_expires_at > now
        if self._github is None or refresh is None or not alive:
            return None
        try:
            token = await self._github.refresh(refresh)
        except GitHubError as exc:
            # Another replica may have used the refresh token a moment ago: take its token.
            again = await _stored(user_id)
            if again is not None and again.token != stored.token:
                return self._sealer.open(user_id, "token", again.token)
            log.warning(
                "github user token not refreshed",
                extra={"user_id": user_id, "github_login": stored.account.login, "error": str(exc)},
            )
            return None
        await GitHubAccount.update(self._values(user_id, token)).where(
            GitHubAccount.user == user_id
        )
        return token.token

    def _values(self, user_id: int, token: UserToken) -> dict[Any, Any]:
        refresh = token.refresh_token
        return {
            GitHubAccount.token_sealed: self._sealer.seal(user_id, "token", token.token),
            GitHubAccount.token_expires_at: token.expires_at,
            GitHubAccount.refresh_sealed: None
            if refresh is None
            else self._sealer.seal(user_id, "refresh", refresh),
            GitHubAccount.refresh_expires_at: token.refresh_expires_at,
            GitHubAccount.updated_at: datetime.now(UTC),
        }


async def _stored(user_id: int) -> _Stored | None:
    row = await GitHubAccount.select(*_Stored.COLUMNS).where(GitHubAccount.user == user_id).first()
    return None if row is None else _Stored.of(row)
