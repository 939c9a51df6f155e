"""Announce alias moves to every proxy over Redis pub/sub, so a promote is served at once.

Proxies without Redis notice moves by polling the alias table's version instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

ALIAS_CHANNEL = "scalemesh:aliases"
"""Redis pub/sub channel: each message is newline-separated alias hostnames, or `*` for all."""
FLUSH_ALL = "*"

AliasAnnouncer = Callable[[list[str]], Awaitable[None]]
"""Called with the hostnames that moved, after the transaction that moved them committed."""


async def publish_alias_change(
    redis: Redis, hostnames: Iterable[str] | None = None, *, channel: str = ALIAS_CHANNEL
) -> None:
    """Tell every proxy listening on `channel` these alias hostnames moved (all when None).

    Call it after the transaction that moved them has committed: a proxy told earlier would
    read, and cache, the old row. Best effort: with Redis down the proxies' TTL still bounds
    how long they serve the old deployment, so a failure is logged, not raised.
    """
    names = [FLUSH_ALL] if hostnames is None else [name.strip().lower() for name in hostnames]
    if not names:
        return
    try:
        await redis.publish(channel, "\n".join(names))
    except RedisError as exc:
        log.warning("could not announce alias change", extra={"error": str(exc)})


def announcer(redis: Redis | None, channel: str = ALIAS_CHANNEL) -> AliasAnnouncer:
    """What the API calls after moving aliases: a Redis publish, or nothing without Redis."""

    async def announce(hostnames: list[str]) -> None:
        if redis is not None:
            await publish_alias_change(redis, hostnames, channel=channel)

    return announce
