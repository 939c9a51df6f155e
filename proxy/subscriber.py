"""Redis pushes to the alias lookup: `AliasSubscriber` drops the names the API announces.

The API publishes on `app.aliases.ALIAS_CHANNEL` the alias labels it moved and the custom
domains it changed, after the commit; each proxy process listens and drops them from its
`Lookup` (a label drops the domains that follow it). While disconnected, the lookup polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.aliases import ALIAS_CHANNEL, FLUSH_ALL
from proxy.lookup import Lookup

log = logging.getLogger(__name__)


class AliasSubscriber:
    """Listens on `channel` (`ALIAS_CHANNEL`) and drops the announced hostnames from a `Lookup`.

    Reconnects on its own with backoff; while disconnected, the lookup polls the version.
    Use as `async with AliasSubscriber(redis, lookup):` in the proxy's lifespan.
    """

    def __init__(
        self,
        redis: Redis,
        lookup: Lookup,
        *,
        channel: str = ALIAS_CHANNEL,
        max_backoff: float = 5.0,
    ) -> None:
        self._redis = redis
        self._lookup = lookup
        self._channel = channel
        self._max_backoff = max_backoff
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    async def start(self, wait: float | None = 5.0) -> None:
        """Start listening; wait up to `wait` seconds for the subscription (not an error)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="alias-subscriber")
        if wait:
            try:
                await asyncio.wait_for(self._subscribed.wait(), wait)
            except TimeoutError:
                log.warning("alias subscriber not connected yet; polling meanwhile")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> AliasSubscriber:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _handle(self, message: dict[str, Any]) -> bool:
        """Act on one pub/sub message; True when it confirms the subscription."""
        if message["type"] == "subscribe":
            # Only now is Redis sure to deliver; anything cached before this could have missed
            # a message, hence the flush in set_push_active.
            self._lookup.set_push_active(True)
            self._subscribed.set()
            return True
        if message["type"] == "message":
            self._lookup.invalidate(_hostnames(message["data"]))
        return False

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after errors."""
        backoff = 0.1
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    async for message in pubsub.listen():
                        if self._handle(message):
                            backoff = 0.1
            except (RedisError, OSError) as exc:
                log.warning("alias subscriber disconnected", extra={"error": str(exc)})
            finally:
                if self._subscribed.is_set():
                    self._subscribed.clear()
                    self._lookup.set_push_active(False)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)


def _hostnames(data: bytes | str) -> list[str] | None:
    # Only our own publisher writes here, but a stray message must not kill the subscriber.
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    names = [name for name in text.split("\n") if name]
    return None if FLUSH_ALL in names else names
