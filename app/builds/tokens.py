"""Bootstrap tokens: the one secret a builder gets, kept only as a hash, dead when its build ends.

A token reads `<deployment id>.<random secret>`, so the builder finds its own URLs from the token
alone. It fetches the build's spec once (`claim_spec`), sends log events while the deployment is
`building` and the token has not expired (`check`, `take_log`), and is deleted when the
deployment finishes (`revoke`). Every check compares hashes in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from app.deployments.lifecycle import DeploymentState
from app.errors import ErrorCode, UserError
from app.tables import BuildToken

SEPARATOR = "."
SECRET_BYTES = 32
_SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")
"""What `secrets.token_urlsafe(SECRET_BYTES)` makes: 43 URL-safe characters, never a dot."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def deployment_of(token: str) -> str | None:
    """The deployment id a well-formed token names (canonical form), or None."""
    named, separator, secret = token.rpartition(SEPARATOR)
    if not separator or not _SECRET.match(secret):
        return None
    try:
        parsed = uuid.UUID(named)
    except ValueError:
        return None
    return str(parsed) if str(parsed) == named else None


class LogQuota(StrEnum):
    """What `take_log` made of a batch."""

    TAKEN = "taken"
    PASSED_NOW = "passed_now"
    """This batch took the log past its limit: the first refusal."""
    PASSED = "passed"
    """The log had passed its limit already."""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as a check needs it: never the token itself."""

    token_hash: str
    expires_at: datetime
    spec_fetched_at: datetime | None
    deployment_state: str

    COLUMNS = (
        BuildToken.token_hash,
        BuildToken.expires_at,
        BuildToken.spec_fetched_at,
        BuildToken.deployment.state,
    )

    @classmethod
    def of(cls, row: dict[str, Any]) -> TokenRecord:
        return cls(
            token_hash=str(row["token_hash"]),
            expires_at=row["expires_at"],
            spec_fetched_at=row["spec_fetched_at"],
            deployment_state=str(row["deployment.state"]),
        )


def _now() -> datetime:
    return datetime.now(UTC)


_NO_HASH = "0" * 64
_INVALID = "The build token is not valid: a builder sends the token it was started with."


class BuildTokens:
    """Issues, checks and revokes bootstrap tokens; `clock` is for tests."""

    def __init__(self, clock: Callable[[], datetime] = _now) -> None:
        self._clock = clock

    async def issue(self, deployment_id: str, ttl: timedelta) -> str:
        """A new token for the deployment's build, replacing any earlier one (a build started
        again after a restart gets a token of its own)."""
        token = f"{deployment_id}{SEPARATOR}{secrets.token_urlsafe(SECRET_BYTES)}"
        hashed, expires_at = token_hash(token), self._clock() + ttl
        replaced = await (
            BuildToken.update(
                {
                    BuildToken.token_hash: hashed,
                    BuildToken.expires_at: expires_at,
                    BuildToken.spec_fetched_at: None,
                    BuildToken.log_bytes: 0,
                }
            )
            .where(BuildToken.deployment == deployment_id)
            .returning(BuildToken._meta.primary_key)
        )
        if not replaced:
            await BuildToken.insert(
                BuildToken(deployment=deployment_id, token_hash=hashed, expires_at=expires_at)
            )
        return token

    async def check(self, deployment_id: str, token: str) -> TokenRecord:
        """The token's record when it may act for this deployment now; else a `UserError`."""
        named = deployment_of(token)
        if named is None:
            raise UserError(ErrorCode.BUILD_TOKEN_INVALID, _INVALID)
        if named != deployment_id:
            raise UserError(
                ErrorCode.BUILD_TOKEN_OTHER_BUILD, "This build token belongs to another build."
            )
        row = await (
            BuildToken.select(*TokenRecord.COLUMNS)
            .where(BuildToken.deployment == deployment_id)
            .first()
        )
        stored = TokenRecord.of(row) if row is not None else None
        # Compared even without a row, so a missing token takes as long as a wrong one.
        matches = hmac.compare_digest(stored.token_hash if stored else _NO_HASH, token_hash(token))
        if stored is None or not matches:
            raise UserError(ErrorCode.BUILD_TOKEN_INVALID, _INVALID)
        if stored.expires_at <= self._clock():
            raise UserError(
                ErrorCode.BUILD_TOKEN_EXPIRED,
                "The build token has expired: the build ran past its time limit.",
            )
        if stored.deployment_state != DeploymentState.BUILDING:
            raise UserError(
                ErrorCode.BUILD_NOT_RUNNING,
                f"This deployment is {stored.deployment_state}: its build is over.",
            )
        return stored

    async def check_for_spec(self, deployment_id: str, token: str) -> None:
        """`check`, and the spec not fetched yet (`claim_spec` makes that final)."""
        record = await self.check(deployment_id, token)
        if record.spec_fetched_at is not None:
            raise _already_fetched()

    async def claim_spec(self, deployment_id: str, token: str) -> None:
        """Use up the token's one spec fetch; a second (or a racing) fetch is refused."""
        await self.check(deployment_id, token)
        claimed = await (
            BuildToken.update({BuildToken.spec_fetched_at: self._clock()})
            .where(
                (BuildToken.deployment == deployment_id)
                & (BuildToken.token_hash == token_hash(token))
                & BuildToken.spec_fetched_at.is_null()
            )
            .returning(BuildToken._meta.primary_key)
        )
        if not claimed:
            raise _already_fetched()

    async def take_log(self, deployment_id: str, size: int, limit: int) -> LogQuota:
        """Count `size` more log bytes against `limit`; past it, nothing more is counted."""
        taken = await (
            BuildToken.update({BuildToken.log_bytes: BuildToken.log_bytes + size})
            .where(
                (BuildToken.deployment == deployment_id) & (BuildToken.log_bytes <= limit - size)
            )
            .returning(BuildToken._meta.primary_key)
        )
        if taken:
            return LogQuota.TAKEN
        # Marked past the limit once, so exactly one refusal says it happened.
        marked = await (
            BuildToken.update({BuildToken.log_bytes: limit + 1})
            .where((BuildToken.deployment == deployment_id) & (BuildToken.log_bytes <= limit))
            .returning(BuildToken._meta.primary_key)
        )
        return LogQuota.PASSED_NOW if marked else LogQuota.PASSED

    async def revoke(self, deployment_id: str) -> None:
        """The build is over: its token stops working at once."""
        await BuildToken.delete().where(BuildToken.deployment == deployment_id)


def _already_fetched() -> UserError:
    return UserError(
        ErrorCode.SPEC_ALREADY_FETCHED,
        "This build's spec was fetched already: a build token fetches it once.",
    )
