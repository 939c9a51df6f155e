"""Password hashing with Argon2id, kept off the event loop and a few at a time.

`HASHER` holds argon2-cffi's defaults (RFC 9106's low-memory profile: 64 MiB a hash). Tests
swap in cheap parameters through a fixture; a hash records its own parameters, so verifying
always uses the ones it was made with. At most `MAX_CONCURRENT_HASHES` hashes or checks run at
once per event loop, so a burst of sign-ins queues instead of exhausting memory.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

HASHER = PasswordHasher()
_DUMMY_PASSWORD = "scalemesh-timing-equaliser"  # noqa: S105 - hashed to waste time, guards nothing
MAX_CONCURRENT_HASHES = 2
T = TypeVar("T")

# One semaphore per event loop, made on first use: an asyncio primitive belongs to the loop
# that first waits on it, and tests (and the CLI) run more than one loop in a process.
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _semaphore() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(MAX_CONCURRENT_HASHES)
    return slots


async def _in_a_slot(work: Callable[[], T]) -> T:
    """Run `work` in a worker thread once one of the hashing slots is free."""
    async with _semaphore():
        return await anyio.to_thread.run_sync(work)


@functools.lru_cache(maxsize=2)
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Verified against when the email is unknown, so both failures cost the same time."""
    return hasher.hash(_DUMMY_PASSWORD)


async def hash_password(password: str) -> str:
    # Argon2 takes ~100 ms of CPU on purpose; keep it off the event loop.
    hasher = HASHER
    return await _in_a_slot(lambda: hasher.hash(password))


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

    return await _in_a_slot(check)
