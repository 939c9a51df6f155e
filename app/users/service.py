"""Accounts: create one, check a password (slowing down guessing), start and end sessions.

A session is one random token, presented as a cookie or as a bearer token (`app.users.http`).
Only a keyed hash of it is stored, so deleting the row revokes it at once and a copy of the
database alone cannot be used to sign in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta

from app.errors import ErrorCode, UserError
from app.settings import Settings
from app.tables import LoginFailure, Session, User
from app.users.passwords import hash_password, verify_password
from app.users.records import CurrentUser, StoredPassword, UserRecord

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
SESSION_LIFETIME = timedelta(days=30)
FAILURE_WINDOW = timedelta(minutes=1)
MAX_FAILURES_PER_WINDOW = 10
WRONG_CREDENTIALS = "Wrong email or password."
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
        self._key = settings.secret_key.reveal().encode()

    def token_hash(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    async def create(self, email: str, password: str) -> UserRecord:
        """Create an account; the email must be free."""
        email = normalise_email(email)
        check_password(password)
        if await User.exists().where(User.email == email):
            raise UserError(
                ErrorCode.EMAIL_TAKEN, f"An account for {email} already exists; sign in instead."
            )
        rows = await User.insert(
            User(email=email, password_hash=await hash_password(password))
        ).returning(*UserRecord.COLUMNS)
        return UserRecord.of(rows[0])

    async def authenticate(self, email: str, password: str) -> int:
        """The user id for good credentials; one message for every kind of bad ones."""
        try:
            email = normalise_email(email)
        except UserError:
            raise UserError(ErrorCode.WRONG_CREDENTIALS, WRONG_CREDENTIALS) from None
        await self._refuse_when_throttled(email)
        found = await _credentials(email)
        # Verified even when there is no such account, so both failures take as long.
        verified = await verify_password(found.password_hash if found else None, password)
        if not verified or found is None:
            await LoginFailure.insert(LoginFailure(email=email))
            raise UserError(ErrorCode.WRONG_CREDENTIALS, WRONG_CREDENTIALS)
        await LoginFailure.delete().where(LoginFailure.email == email)
        return found.user_id

    async def _refuse_when_throttled(self, email: str) -> None:
        now = datetime.now(UTC)
        # Old failures count for nobody; dropping them all keeps the table small.
        await LoginFailure.delete().where(LoginFailure.failed_at <= now - FAILURE_WINDOW)
        recent: list[datetime] = await (
            LoginFailure.select(LoginFailure.failed_at)
            .where(LoginFailure.email == email)
            .order_by(LoginFailure.failed_at)
            .output(as_list=True)
        )
        if len(recent) >= MAX_FAILURES_PER_WINDOW:
            retry_after = max(1, int((recent[0] + FAILURE_WINDOW - now).total_seconds()) + 1)
            raise UserError(
                ErrorCode.TOO_MANY_SIGN_INS,
                f"Too many failed sign-ins for {email}; wait {retry_after} seconds and try again.",
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
        await Session.delete().where(Session.token_hash == user.token_hash)

    async def user_for_token(self, token: str) -> CurrentUser | None:
        """The user a live session token belongs to, else None."""
        digest = self.token_hash(token)
        row = (
            await Session.select(*CurrentUser.COLUMNS)
            .where((Session.token_hash == digest) & (Session.expires_at > datetime.now(UTC)))
            .first()
        )
        return None if row is None else CurrentUser.of(row, digest)


async def _credentials(email: str) -> StoredPassword | None:
    row = await User.select(*StoredPassword.COLUMNS).where(User.email == email).first()
    return None if row is None else StoredPassword.of(row)
