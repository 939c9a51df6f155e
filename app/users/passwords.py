"""Password hashing with Argon2id, kept off the event loop.

`HASHER` holds argon2-cffi's defaults (RFC 9106's low-memory profile). Tests swap in cheap
parameters through a fixture; a hash records its own parameters, so verifying always uses
the ones it was made with.
"""

from __future__ import annotations

import functools

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

HASHER = PasswordHasher()
_DUMMY_PASSWORD = "scalemesh-timing-equaliser"  # noqa: S105 - hashed to waste time, guards nothing


@functools.lru_cache(maxsize=2)
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Verified against when the email is unknown, so both failures cost the same time."""
    return hasher.hash(_DUMMY_PASSWORD)


async def hash_password(password: str) -> str:
    # Argon2 takes ~100 ms of CPU on purpose; keep it off the event loop.
    return await anyio.to_thread.run_sync(HASHER.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether `password` matches; with no hash (no such account) it costs the same, and fails."""
    hasher = HASHER

    def check() -> bool:
        try:
            return hasher.verify(password_hash or _dummy_hash(hasher), password) and bool(
                password_hash
            )
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(check)
