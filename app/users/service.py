"""Accounts: create one, check a password (slowing down guessing), start and end sessions.

Who may make an account is `settings.signup`; the first account ever made is the admin, who
adds the others. A session is one random token, presented as a cookie or as a bearer token
(`app.users.http`); API tokens (`app.users.tokens`) are bearer tokens only. Only a keyed hash of
either is stored, so deleting the row revokes it at once and a copy of the database alone cannot
be used to sign in. Failed sign-ins are counted per email and per client address.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import NewType

from piccolo.columns.combination import Where
from piccolo.engine.postgres import PostgresEngine

from app.database import is_unique_violation, write_transaction
from app.errors import ErrorCode, UserError
from app.settings import Settings
from app.settings_parts import Signup
from app.tables import LoginFailure, Session, User
from app.users.passwords import hash_password, verify_password
from app.users.records import Credential, CurrentUser, StoredPassword, UserRecord
from app.users.tokens import ApiTokens

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
SESSION_LIFETIME = timedelta(days=30)
FAILURE_WINDOW = timedelta(minutes=1)
MAX_FAILURES_PER_WINDOW = 10
"""Per email: guessing one account's password."""
MAX_CLIENT_FAILURES_PER_WINDOW = 30
"""Per client address: trying many accounts from one place."""
SIGNUP_CLOSED = "Sign-up by password is closed on this Scale Mesh: ask its admin to add you."
"""The sign-in page offers "Sign in with GitHub" beside it where that is configured."""
WRONG_CREDENTIALS = "Wrong email or password."
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

ClientAddress = NewType("ClientAddress", str)
"""Where a sign-in came from, as the API saw it (the peer's IP address); "" when unknown."""


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > 254 or not EMAIL.match(email):
        raise UserError(ErrorCode.INVALID_EMAIL, f"{raw!r} is not an email address.")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(
            ErrorCode.INVALID_PASSWORD,
            f"The password must be at least {MIN_PASSWORD} characters long.",
        )
    if len(password) > MAX_PASSWORD:
        raise UserError(
            ErrorCode.INVALID_PASSWORD,
            f"The password must be at most {MAX_PASSWORD} characters long.",
        )


class UserService:
    """Accounts and sessions; the secret key makes session hashes useless to a database thief."""

    def __init__(self, settings: Settings) -> None:
        self._keys = settings.require_secret_keys()
        self._signup = settings.signup
        self.tokens = ApiTokens(self.token_hashes)

    def token_hash(self, token: str) -> str:
        """What is stored of a new session or API token: its HMAC under the signing key."""
        return self._keys.primary.mac(token.encode())

    def token_hashes(self, token: str) -> list[str]:
        """What may be stored of a token: its HMAC under each key, for tokens made before the
        latest key rotation."""
        return self._keys.macs(token.encode())

    async def signup_open(self) -> bool:
        """Whether anyone may make an account with a password now (`settings.signup`)."""
        if self._signup is Signup.OPEN:
            return True
        return self._signup is Signup.FIRST and not await User.exists()

    async def sign_up(self, email: str, password: str) -> UserRecord:
        """Someone making their own account: only while `settings.signup` allows it."""
        return await self._insert(email, password, admin=False, self_service=True)

    async def create(self, email: str, password: str, *, admin: bool = False) -> UserRecord:
        """Make an account whatever `settings.signup` says (the admin CLI, an admin)."""
        return await self._insert(email, password, admin=admin, self_service=False)

    async def add_account(
        self, by: CurrentUser, email: str, password: str, *, admin: bool = False
    ) -> UserRecord:
        """An admin adds an account for someone else."""
        if not by.is_admin:
            raise UserError(ErrorCode.ADMIN_ONLY, "Only an admin can add accounts.")
        return await self._insert(email, password, admin=admin, self_service=False)

    async def _insert(
        self, email: str, password: str, *, admin: bool, self_service: bool
    ) -> UserRecord:
        email = normalise_email(email)
        check_password(password)
        if self_service and not await self.signup_open():
            # Refused before hashing: a closed sign-up costs no CPU.
            raise UserError(ErrorCode.SIGNUP_CLOSED, SIGNUP_CLOSED)
        password_hash = await hash_password(password)
        try:
            async with write_transaction(User._meta.db):
                if isinstance(User._meta.db, PostgresEngine):
                    # Two first sign-ups at once must not both count no users and both be admin.
                    await User.raw("LOCK TABLE scalemesh_user IN SHARE ROW EXCLUSIVE MODE")
                first = not await User.exists()
                if self_service and not first and self._signup is not Signup.OPEN:
                    raise UserError(ErrorCode.SIGNUP_CLOSED, SIGNUP_CLOSED)
                if await User.exists().where(User.email == email):
                    raise _taken(email)
                rows = await User.insert(
                    User(email=email, password_hash=password_hash, is_admin=admin or first)
                ).returning(*UserRecord.COLUMNS)
        except Exception as exc:
            if is_unique_violation(exc):
                raise _taken(email) from None
            raise
        return UserRecord.of(rows[0])

    async def authenticate(
        self, email: str, password: str, client: ClientAddress = ClientAddress("")
    ) -> int:
        """The user id for good credentials; one message for every kind of bad ones."""
        try:
            email = normalise_email(email)
        except UserError:
            raise UserError(ErrorCode.WRONG_CREDENTIALS, WRONG_CREDENTIALS) from None
        await self._refuse_when_throttled(email, client)
        found = await _credentials(email)
        # Verified even when there is no such account, so both failures take as long.
        verified = await verify_password(found.password_hash if found else None, password)
        if not verified or found is None:
            await LoginFailure.insert(LoginFailure(email=email, client=client[:64]))
            raise UserError(ErrorCode.WRONG_CREDENTIALS, WRONG_CREDENTIALS)
        # Only this email's failures: one good account must not reset an address's count.
        await LoginFailure.delete().where(LoginFailure.email == email)
        return found.user_id

    async def _refuse_when_throttled(self, email: str, client: ClientAddress) -> None:
        now = datetime.now(UTC)
        # Old failures count for nobody; dropping them all keeps the table small.
        await LoginFailure.delete().where(LoginFailure.failed_at <= now - FAILURE_WINDOW)
        recent = await _failures_since(LoginFailure.email == email)
        if len(recent) >= MAX_FAILURES_PER_WINDOW:
            retry_after = _retry_after(recent[0], now)
            raise UserError(
                ErrorCode.TOO_MANY_SIGN_INS,
                f"Too many failed sign-ins for {email}; wait {retry_after} seconds and try again.",
                retry_after=retry_after,
            )
        if not client:
            return  # an unknown address is nobody's: never lump unknown callers together
        recent = await _failures_since(LoginFailure.client == client[:64])
        if len(recent) >= MAX_CLIENT_FAILURES_PER_WINDOW:
            retry_after = _retry_after(recent[0], now)
            raise UserError(
                ErrorCode.TOO_MANY_SIGN_INS,
                "Too many failed sign-ins from your address; "
                f"wait {retry_after} seconds and try again.",
                retry_after=retry_after,
            )

    async def start_session(self, user_id: int) -> tuple[str, datetime]:
        """Create a session for the user; return its token (shown once) and expiry."""
        token = secrets.token_urlsafe(32)
        expires_at = datetime.now(UTC) + SESSION_LIFETIME
        await Session.insert(
            Session(user=user_id, token_hash=self.token_hash(token), expires_at=expires_at)
        )
        return token, expires_at

    async def end_session(self, user: CurrentUser) -> None:
        """End the session presented; an API token is revoked only by deleting it."""
        if user.credential is Credential.SESSION:
            await Session.delete().where(Session.token_hash == user.token_hash)

    async def user_for_token(self, token: str, *, api_tokens: bool = True) -> CurrentUser | None:
        """The user a live session token belongs to, else (unless `api_tokens` is false, as
        for a cookie) the user of a live API token, else None."""
        row = (
            await Session.select(*CurrentUser.COLUMNS)
            .where(
                Session.token_hash.is_in(self.token_hashes(token))
                & (Session.expires_at > datetime.now(UTC))
            )
            .first()
        )
        if row is not None:
            return CurrentUser.of(row)
        return await self.tokens.user_for(token) if api_tokens else None


def _taken(email: str) -> UserError:
    return UserError(
        ErrorCode.EMAIL_TAKEN, f"An account for {email} already exists; sign in instead."
    )


async def _failures_since(which: Where) -> list[datetime]:
    """When each failure still in the window happened, oldest first."""
    failed: list[datetime] = await (
        LoginFailure.select(LoginFailure.failed_at)
        .where(which)
        .order_by(LoginFailure.failed_at)
        .output(as_list=True)
    )
    return failed


def _retry_after(oldest: datetime, now: datetime) -> int:
    """Seconds until the oldest failure leaves the window."""
    return max(1, int((oldest + FAILURE_WINDOW - now).total_seconds()) + 1)


async def _credentials(email: str) -> StoredPassword | None:
    row = await User.select(*StoredPassword.COLUMNS).where(User.email == email).first()
    return None if row is None else StoredPassword.of(row)
