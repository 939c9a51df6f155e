"""What Scale Mesh asks of GitHub on a user's behalf, as an interface, and what it answers.

"Sign in with GitHub" is the App's user authorization: the OAuth web flow for the dashboard,
the device flow for the CLI. The user token it yields is what access checks ask GitHub with:
who the user is, and what they may do with a repository. Importing this costs nothing; the
githubkit implementation is `app.github.oauth_client`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from app.github.api import GitHubError


class OAuthRefused(GitHubError):
    """GitHub refused a code, a device code or a refresh token (`reason` is GitHub's `error`,
    such as `bad_verification_code`, `expired_token`, `access_denied`)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, 400)
        self.reason = reason


class TokenRejected(GitHubError):
    """GitHub answered 401 to a user token: it expired or the user revoked the App."""


@dataclass(frozen=True, slots=True)
class UserToken:
    """A user-to-server token, with its refresh token when the App's tokens expire."""

    token: str = field(repr=False)
    expires_at: datetime | None = None
    """None: the token does not expire (the App has expiring user tokens turned off)."""
    refresh_token: str | None = field(default=None, repr=False)
    refresh_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class GitHubUser:
    id: int
    """GitHub's numeric user id: accounts are found by it, never by login or email."""
    login: str


class Permission(StrEnum):
    """A user's permission on a repository, as `GET /repos/{owner}/{repo}` reports it."""

    ADMIN = "admin"
    MAINTAIN = "maintain"
    PUSH = "push"
    TRIAGE = "triage"
    PULL = "pull"


@dataclass(frozen=True, slots=True)
class RepositoryAccess:
    """A repository as one user sees it."""

    id: int
    full_name: str
    private: bool
    permission: Permission
    """The highest permission the user has on it."""


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """The start of a device flow: show `user_code` and `verification_uri` to the user."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    expires_in: int
    interval: int
    """Seconds to wait between two polls."""


@dataclass(frozen=True, slots=True)
class DevicePending:
    """The user has not finished authorizing yet; poll again after `interval` seconds."""

    interval: int


# Runtime-checkable: Litestar checks injected dependencies with isinstance().
@runtime_checkable
class GitHubUsersApi(Protocol):
    """GitHub as seen by a user who signed in with it. Errors are `GitHubError`s."""

    def authorize_url(self, state: str, redirect_uri: str) -> str:
        """Where the browser goes to authorize the App (the web flow's first step)."""
        ...

    async def exchange_code(self, code: str, redirect_uri: str) -> UserToken:
        """The web flow's code for a token; `OAuthRefused` for a bad or used code."""
        ...

    async def refresh(self, refresh_token: str) -> UserToken:
        """A new token (and refresh token) for a refresh token; `OAuthRefused` once it is dead."""
        ...

    async def start_device(self) -> DeviceCode: ...

    async def poll_device(self, device_code: str) -> UserToken | DevicePending:
        """`OAuthRefused` once the code expired or the user denied access."""
        ...

    async def user(self, token: str) -> GitHubUser:
        """The user a token belongs to; `TokenRejected` for a dead token."""
        ...

    async def repository(self, token: str, repository: int | str) -> RepositoryAccess | None:
        """The repository (by id, or "owner/name") as the token's user sees it; None when they
        cannot see it (GitHub answers 404 to both missing and hidden repositories)."""
        ...

    async def aclose(self) -> None: ...
