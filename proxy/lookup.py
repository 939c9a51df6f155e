"""Hostname → deployment for the proxy (DESIGN §6), cached, and told quickly when aliases move.

`Lookup.resolve(host)` turns a `Host` into a `Target`: a label under the root domain
(`shop`, `shop-git-main`, `shop-1a2b3c4d5`) or a full custom hostname is an `Alias` row, which
points at a `Deployment`, whose files live under `builder.spec.output_prefix`.

Answers are cached per hostname for a short TTL, and dropped sooner when an alias moves, so a
promote or a new production deployment is served by every proxy replica within a second:

- with Redis, the API calls `app.aliases.publish_alias_change` after the transaction that moved
  aliases commits, and each proxy runs an `AliasSubscriber` that drops those hostnames;
- without Redis (or while the subscriber is disconnected), `Lookup` polls an "aliases version"
  (row count and newest `updated_at`) at most every `poll_interval` seconds, on lookup, and
  drops everything when it changes. `point_alias` stamps `updated_at` on every move.

The proxy imports only the schema, settings, storage, the alias channel and the build spec:
never the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any, Final, Literal

from piccolo.query.functions.aggregate import Count, Max
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.aliases import ALIAS_CHANNEL, FLUSH_ALL
from app.deployments.lifecycle import DeploymentState
from app.hostnames import alias_name
from app.tables import Alias
from proxy.target import Target

log = logging.getLogger(__name__)


DEFAULT_TTL = 30.0
PENDING_TTL = 1.0
"""A deployment still queued or building becomes ready without its alias moving: look again soon."""
DEFAULT_POLL_INTERVAL = 0.5
DEFAULT_MAX_ENTRIES = 10_000


class _Missing(Enum):
    MISSING = "missing"


MISSING: Final = _Missing.MISSING
"""What `Lookup.peek` says when only `resolve` can answer."""
_UNFINISHED = frozenset({DeploymentState.QUEUED, DeploymentState.BUILDING})


Peeked = Target | None | Literal[_Missing.MISSING]


@dataclass(frozen=True, slots=True)
class LookupStats:
    hits: int
    misses: int
    queries: int
    """Alias queries run (misses joined to a query in flight share it)."""
    version_checks: int
    flushes: int
    entries: int


class Lookup:
    """Resolves hostnames to deployments; one per proxy process, used from one event loop."""

    def __init__(
        self,
        root_domain: str,
        *,
        ttl: float = DEFAULT_TTL,
        pending_ttl: float = PENDING_TTL,
        poll_interval: float | None = DEFAULT_POLL_INTERVAL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`poll_interval=None` turns the version check off (then only TTL and pushes apply)."""
        self.root_domain = root_domain.strip(".").lower()
        self.ttl = ttl
        self.pending_ttl = min(pending_ttl, ttl)
        self.poll_interval = poll_interval
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[Target | None, float]] = OrderedDict()
        # `Host` header → alias name, so a busy host's header is parsed once, not per request.
        self._names: dict[str, str | None] = {}
        self._loading: dict[str, asyncio.Task[Target | None]] = {}
        # Bumped by every invalidation: a query that started before it may have read the old
        # alias, so its answer is returned but not cached.
        self._generation = 0
        self._version: tuple[Any, ...] | None = None
        self._next_poll = 0.0
        self._poll_lock = asyncio.Lock()
        self._push_active = False
        self._hits = self._misses = self._queries = self._version_checks = self._flushes = 0

    # --- resolving ------------------------------------------------------------------------

    def alias_name(self, host: str) -> str | None:
        """The `Alias.hostname` a `Host` header names (`app.hostnames.alias_name`), or None."""
        return alias_name(host, self.root_domain)

    def _name(self, host: str) -> str | None:
        try:
            return self._names[host]
        except KeyError:
            pass
        if len(self._names) >= self.max_entries:
            # Hosts are client input: bound the memo, and refill it from whatever is hot now.
            self._names.clear()
        name = self._names[host] = self.alias_name(host)
        return name

    def peek(self, host: str) -> Peeked:
        """`resolve`'s answer when it is at hand without waiting, else `MISSING`.

        The proxy's hot path: no coroutine, no lock. `MISSING` when the answer is not cached
        or has expired, or when a version check is due (only `resolve` runs those).
        """
        now = self._clock()
        if self.poll_interval is not None and not self._push_active and now >= self._next_poll:
            return MISSING
        name = self._name(host)
        if name is None:
            return None
        entry = self._entries.get(name)
        if entry is None or entry[1] <= now:
            return MISSING
        self._entries.move_to_end(name)
        self._hits += 1
        return entry[0]

    async def resolve(self, host: str) -> Target | None:
        """The deployment `host` serves (in any state), or None when no alias has that name."""
        name = self._name(host)
        if name is None:
            return None
        await self._check_version()
        entry = self._entries.get(name)
        if entry is not None and entry[1] > self._clock():
            self._entries.move_to_end(name)
            self._hits += 1
            return entry[0]
        self._misses += 1
        task = self._loading.get(name)
        if task is None:
            # One query per hostname at a time, in its own task so a cancelled request does
            # not cancel the answer the others are waiting for.
            task = asyncio.create_task(self._load(name), name=f"lookup:{name}")
            self._loading[name] = task
            task.add_done_callback(_consume_exception)
        return await asyncio.shield(task)

    async def _load(self, name: str) -> Target | None:
        generation = self._generation
        try:
            self._queries += 1
            target = await _query(name)
        finally:
            del self._loading[name]
        if generation == self._generation:
            previous = self._entries.get(name)
            if previous is not None and previous[0] == target:
                # The same answer again (an expired entry refreshed): keep the object the
                # proxy's remembered answers were tied to, so they stay good.
                target = previous[0]
            ttl = (
                self.pending_ttl if target is not None and target.state in _UNFINISHED else self.ttl
            )
            self._entries[name] = (target, self._clock() + ttl)
            self._entries.move_to_end(name)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return target

    # --- invalidation ---------------------------------------------------------------------

    def invalidate(self, hostnames: Iterable[str] | None = None) -> None:
        """Forget these alias hostnames (as stored: labels or full names), or all when None."""
        self._generation += 1
        if hostnames is None:
            self._entries.clear()
            self._flushes += 1
            return
        for name in hostnames:
            self._entries.pop(name.strip().lower(), None)

    def set_push_active(self, active: bool) -> None:
        """Called by `AliasSubscriber`: while pushes arrive, polling the version is not needed.

        Either way the cache is emptied: entries cached while nobody listened may be stale.
        """
        self._push_active = active
        self._version = None
        self._next_poll = 0.0
        self.invalidate()

    async def _check_version(self) -> None:
        if self.poll_interval is None or self._push_active or self._clock() < self._next_poll:
            return
        async with self._poll_lock:
            if self._clock() < self._next_poll:
                return  # another request checked while we waited for the lock
            self._version_checks += 1
            version = await _aliases_version()
            self._next_poll = self._clock() + self.poll_interval
        # The first version read has nothing to compare with, and nothing cached to flush.
        changed = self._version is not None and version != self._version
        self._version = version
        if changed:
            log.debug("aliases changed; lookup cache flushed")
            self.invalidate()

    @property
    def stats(self) -> LookupStats:
        return LookupStats(
            hits=self._hits,
            misses=self._misses,
            queries=self._queries,
            version_checks=self._version_checks,
            flushes=self._flushes,
            entries=len(self._entries),
        )


async def _query(name: str) -> Target | None:
    row = await Alias.select(*Target.COLUMNS).where(Alias.hostname == name).first()
    return None if row is None else Target.of(name, row)


async def _aliases_version() -> tuple[Any, ...]:
    # The count catches deletions (a project removed, its aliases cascaded), the newest stamp
    # catches moves. Compared only for equality, so the engine's timestamp type is irrelevant.
    row = await Alias.select(Count(alias="n"), Max(Alias.updated_at, alias="latest")).first()
    return (row["n"], row["latest"]) if row is not None else ()


# --- Redis pushes -------------------------------------------------------------------------


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


def _consume_exception(task: asyncio.Task[Target | None]) -> None:
    # When every waiter was cancelled nobody reads the query's exception; reading it here keeps
    # asyncio from logging "Task exception was never retrieved" for a failure already raised.
    with contextlib.suppress(asyncio.CancelledError):
        task.exception()


def _hostnames(data: bytes | str) -> list[str] | None:
    # Only our own publisher writes here, but a stray message must not kill the subscriber.
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    names = [name for name in text.split("\n") if name]
    return None if FLUSH_ALL in names else names
