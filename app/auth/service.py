"""Signing in with GitHub: the web flow's state and callback, the device flow, the account.

`GitHubSignIn` starts a sign-in (a random `state`, of which only a keyed hash is stored, used
once within minutes), finishes it (the state checked against the browser's cookie and the
table, the code exchanged, the GitHub user read) and finds the account by GitHub's numeric user
id, or makes one. Accounts are never matched by email or login: an existing password account
with the same address is not taken over. The account's session is the usual one
(`UserService.start_session`), and the GitHub token is kept sealed (`UserTokens`). No HTTP here.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from app import database
from app.auth.user_tokens import UserTokens
from app.errors import ErrorCode, UserError
from app.github.api import GitHubError
from app.github.oauth_api import (
    DeviceCode,
    DevicePending,
    GitHubUser,
    GitHubUsersApi,
    OAuthRefused,
    UserToken,
)
from app.local_paths import local_path
from app.settings import Settings
from app.tables import OAuthState, User
from app.users.service import UserService

log = logging.getLogger(__name__)
T = TypeVar("T")

STATE_LIFETIME = timedelta(minutes=10)
CALLBACK_PATH = "/auth/github/callback"
NOREPLY_DOMAIN = "users.noreply.github.com"
STATE_INVALID = (
    "This sign-in link has expired or was already used; start again with Sign in with GitHub."
)
REFUSALS = {
    "access_denied": "GitHub sign-in was cancelled: access to your GitHub account was denied.",
    "expired_token": "The GitHub sign-in code expired before it was approved; start again.",
    "bad_verification_code": "GitHub did not accept the sign-in code; start again.",
    "incorrect_device_code": "GitHub does not know this device code; start again.",
}


@dataclass(frozen=True, slots=True)
class Started:
    """A web sign-in under way: the browser keeps `state` in a cookie and goes to `url`."""

    state: str = field(repr=False)
    authorize_url: str


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A finished sign-in: a session for the account, and where to go next."""

    token: str = field(repr=False)
    expires_at: datetime
    next_path: str
    user_id: int


def noreply_email(user: GitHubUser) -> str:
    """GitHub's own no-reply address of a user, as an account's unique email."""
    return f"{user.id}+{user.login}@{NOREPLY_DOMAIN}".lower()


class GitHubSignIn:
    """ "Sign in with GitHub" for the App whose client is `github`."""

    def __init__(
        self,
        settings: Settings,
        engine: database.AnyEngine,
        users: UserService,
        tokens: UserTokens,
        github: GitHubUsersApi,
    ) -> None:
        self._keys = settings.require_secret_keys()
        self._redirect_uri = settings.public_url + CALLBACK_PATH
        self._engine = engine
        self._users = users
        self._tokens = tokens
        self._github = github

    def _hashes(self, state: str) -> list[str]:
        """The state's HMAC under each key, the signing key's first: a replica may still have
        stored it under the key before the latest rotation."""
        return self._keys.macs(b"oauth-state|" + state.encode())

    # --- the web flow ----------------------------------------------------------------------

    async def start(self, next_path: str | None) -> Started:
        now = datetime.now(UTC)
        await OAuthState.delete().where(OAuthState.expires_at <= now)
        state = secrets.token_urlsafe(32)
        await OAuthState.insert(
            OAuthState(
                state_hash=self._hashes(state)[0],
                next_path=local_path(next_path),
                expires_at=now + STATE_LIFETIME,
            )
        )
        return Started(state, self._github.authorize_url(state, self._redirect_uri))

    async def finish(
        self, state: str | None, cookie_state: str | None, code: str | None
    ) -> SignedIn:
        """The callback: the state must be this browser's and unused; then the code's user."""
        next_path = await self._take_state(state, cookie_state)
        if not code:
            raise UserError(ErrorCode.OAUTH_REFUSED, REFUSALS["access_denied"])
        token = await _asking(self._github.exchange_code(code, self._redirect_uri))
        user_id = await self._account_for(token)
        session, expires_at = await self._users.start_session(user_id)
        return SignedIn(session, expires_at, next_path, user_id)

    async def _take_state(self, state: str | None, cookie_state: str | None) -> str:
        """The state's `next` path, once: the row is deleted as it is read."""
        if not state or not cookie_state:
            raise UserError(ErrorCode.OAUTH_STATE_INVALID, STATE_INVALID)
        if not hmac.compare_digest(state.encode(), cookie_state.encode()):
            raise UserError(ErrorCode.OAUTH_STATE_INVALID, STATE_INVALID)
        taken = await (
            OAuthState.delete()
            .where(OAuthState.state_hash.is_in(self._hashes(state)))
            .returning(OAuthState.next_path, OAuthState.expires_at)
        )
        if not taken or taken[0]["expires_at"] <= datetime.now(UTC):
            raise UserError(ErrorCode.OAUTH_STATE_INVALID, STATE_INVALID)
        return local_path(str(taken[0]["next_path"]))

    # --- the device flow -------------------------------------------------------------------

    async def start_device(self) -> DeviceCode:
        return await _asking(self._github.start_device())

    async def poll_device(self, device_code: str) -> SignedIn:
        """A session once the user approved; `OAUTH_PENDING` (retry after the interval) before."""
        answer = await _asking(self._github.poll_device(device_code))
        if isinstance(answer, DevicePending):
            raise UserError(
                ErrorCode.OAUTH_PENDING,
                "Not approved yet: enter the code on GitHub, then ask again.",
                retry_after=answer.interval,
            )
        user_id = await self._account_for(answer)
        session, expires_at = await self._users.start_session(user_id)
        return SignedIn(session, expires_at, "/", user_id)

    # --- the account -----------------------------------------------------------------------

    async def _account_for(self, token: UserToken) -> int:
        """The account of the token's GitHub user (found by id, or made), its token saved."""
        user = await _asking(self._github.user(token.token))
        linked = await self._tokens.account_of_github_user(user.id)
        if linked is not None and linked.login != user.login:
            await _follow_rename(linked.user_id, GitHubUser(user.id, linked.login), user)
        user_id = linked.user_id if linked is not None else await self._create(user)
        try:
            await self._tokens.save(user_id, user, token)
        except Exception as exc:
            if linked is not None or not database.is_unique_violation(exc):
                raise
            # The same GitHub user signed in twice at once and the other made the account
            # first: drop this one, use that one.
            await User.delete().where(User._meta.primary_key == user_id)
            winner = await self._tokens.account_of_github_user(user.id)
            if winner is None:
                raise
            user_id = winner.user_id
            await self._tokens.save(user_id, user, token)
        log.info("signed in with github", extra={"user_id": user_id, "github_login": user.login})
        return user_id

    async def _create(self, user: GitHubUser) -> int:
        """A new account without a password; the very first account is the admin."""
        email = noreply_email(user)
        async with database.write_transaction(self._engine):
            if await User.exists().where(User.email == email):
                # Someone made a password account with this address: it is not theirs to have.
                email = email.replace("@", f"+{secrets.token_hex(4)}@")
            first = not await User.exists()
            rows = await User.insert(User(email=email, password_hash="", is_admin=first)).returning(
                User._meta.primary_key
            )
        return int(rows[0]["id"])


async def _follow_rename(user_id: int, before: GitHubUser, after: GitHubUser) -> None:
    """A renamed GitHub user's account keeps up: its made-up address follows the new login."""
    email = noreply_email(after)
    if await User.exists().where(User.email == email):
        return  # taken by another account; the old address stays
    await User.update({User.email: email}).where(
        (User._meta.primary_key == user_id) & (User.email == noreply_email(before))
    )


async def _asking(call: Awaitable[T]) -> T:
    """Await a GitHub call, turning its failures into refusals a person can act on."""
    try:
        return await call
    except OAuthRefused as exc:
        sentence = REFUSALS.get(exc.reason, f"GitHub refused the sign-in ({exc.reason}).")
        raise UserError(ErrorCode.OAUTH_REFUSED, sentence) from None
    except GitHubError as exc:
        log.warning("github sign-in failed", extra={"error": str(exc)})
        raise UserError(
            ErrorCode.GITHUB_UNAVAILABLE,
            "GitHub could not be reached to sign you in; try again in a minute.",
        ) from None
