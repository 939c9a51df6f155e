"""Hostname → what it serves, for the proxy (DESIGN §6), cached, and told quickly of moves.

`Lookup.resolve(host)` turns a `Host` into a `Target`: a label under the root domain (`shop`,
`shop-git-main`, `shop-1a2b3c4d5`) is an `Alias` row, which points at a `Deployment`, whose
files live under `builder.spec.output_prefix`. Any other hostname is a custom domain: a
verified `Domain` row (its own, else a verified wildcard `*.<parent>` one level up) names the
label it follows (its project's production label, or a branch's), and that label's alias
says what it serves; so a domain follows every publish, promote and rollback with no row
moved. A domain with `redirect_to` is a `Redirect`. Pending and unknown domains are None.
`Lookup.tls_allowed(host)` says whether a certificate may be issued for it (Caddy's ask).

Answers are cached per hostname for a short TTL, and dropped sooner when an alias or domain
moves, so a promote or a new production deployment is served by every proxy replica within a
second:

- with Redis, the API calls `app.aliases.publish_alias_change` after the transaction that moved
  aliases (or changed a domain) commits, and each proxy runs an `AliasSubscriber` that drops
  those names: an announced label drops every domain resolved through it too;
- without Redis (or while the subscriber is disconnected), `Lookup` polls a version (row
  counts and newest `updated_at` of aliases and domains) at most every `poll_interval`
  seconds, on lookup, and drops everything when it changes. `point_alias` stamps
  `updated_at` on every move.

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
from typing import Any, Final, Literal

from app.deployments.lifecycle import DeploymentState
from app.hostnames import alias_name
from proxy import queries
from proxy.target import Redirect, Target

log = logging.getLogger(__name__)


DEFAULT_TTL = 30.0
PENDING_TTL = 1.0
"""A deployment still queued or building becomes ready without its alias moving: look again soon."""
DEFAULT_POLL_INTERVAL = 0.5
DEFAULT_MAX_ENTRIES = 10_000
CLOSE_WAIT_S = 5.0
"""How long `aclose` waits for a version check under way (one small query) before stopping it."""


class _Missing(Enum):
    MISSING = "missing"


MISSING: Final = _Missing.MISSING
"""What `Lookup.peek` says when only `resolve` can answer."""
_UNFINISHED = frozenset({DeploymentState.QUEUED, DeploymentState.BUILDING})


Answer = Target | Redirect | None
"""What a hostname serves: a deployment, a redirect (a custom domain), or nothing."""
Peeked = Answer | Literal[_Missing.MISSING]
_Entry = tuple[Answer, float, bool]
"""An answer, when it expires, and whether a certificate may be issued for the hostname."""


@dataclass(frozen=True, slots=True)
class LookupStats:
    hits: int
    misses: int
    queries: int
    """Alias and domain queries run (misses joined to a query in flight share it)."""
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
        self._root_suffix = f".{self.root_domain}"
        self.ttl = ttl
        self.pending_ttl = min(pending_ttl, ttl)
        self.poll_interval = poll_interval
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # `Host` header → alias name, so a busy host's header is parsed once, not per request.
        self._names: dict[str, str | None] = {}
        self._loading: dict[str, asyncio.Task[_Entry]] = {}
        # A cached custom domain → the label it was resolved through, and back: a moved label
        # must drop the domains that follow it. Only names in `_entries` are kept here.
        self._via: dict[str, str] = {}
        self._followers: dict[str, set[str]] = {}
        # Bumped by every invalidation: a query that started before it may have read the old
        # alias, so its answer is returned but not cached.
        self._generation = 0
        self._version: tuple[Any, ...] | None = None
        self._next_poll = 0.0
        self._poll_lock = asyncio.Lock()
        self._push_active = False
        self._checking: asyncio.Task[None] | None = None
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
        or has expired, or before the first version check. When a later check is due, it
        starts one beside the request and answers from the cache meanwhile: requests do not
        queue behind the query, and a change it finds flushes the cache when it ends (so a
        moved alias is still honoured within the poll interval plus one query).
        """
        now = self._clock()
        if self.poll_interval is not None and not self._push_active and now >= self._next_poll:
            if self._version is None:
                return MISSING
            self._check_beside()
        name = self._name(host)
        if name is None:
            return None
        entry = self._entries.get(name)
        if entry is None or entry[1] <= now:
            return MISSING
        self._entries.move_to_end(name)
        self._hits += 1
        return entry[0]

    async def resolve(self, host: str) -> Answer:
        """What `host` serves (a deployment in any state, or a redirect), or None."""
        name = self._name(host)
        if name is None:
            return None
        await self._check_version()
        return (await self._lookup(name))[0]

    async def tls_allowed(self, host: str) -> bool:
        """Whether a certificate may be issued for `host`: a label under the root domain that
        has an alias, or a verified custom domain (even one whose label has no deployment yet).
        From the same cache as `resolve`, so asking costs what serving the host costs."""
        name = self._name(host)
        if name is None:
            return False
        await self._check_version()
        return (await self._lookup(name))[2]

    async def _lookup(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is not None and entry[1] > self._clock():
            self._entries.move_to_end(name)
            self._hits += 1
            return entry
        self._misses += 1
        task = self._loading.get(name)
        if task is None:
            # One query per hostname at a time, in its own task so a cancelled request does
            # not cancel the answer the others are waiting for.
            task = asyncio.create_task(self._load(name), name=f"lookup:{name}")
            self._loading[name] = task
            task.add_done_callback(_consume_exception)
        return await asyncio.shield(task)

    async def _load(self, name: str) -> _Entry:
        generation = self._generation
        label: str | None = None
        try:
            if "." in name:
                answer, label, allowed = await self._domain(name)
            else:
                self._queries += 1
                answer = await queries.alias_target(name)
                allowed = answer is not None
        finally:
            del self._loading[name]
        previous = self._entries.get(name)
        if previous is not None and previous[0] == answer:
            # The same answer again (an expired entry refreshed): keep the object the
            # proxy's remembered answers were tied to, so they stay good.
            answer = previous[0]
        unfinished = isinstance(answer, Target) and answer.state in _UNFINISHED
        entry = (answer, self._clock() + (self.pending_ttl if unfinished else self.ttl), allowed)
        if generation == self._generation:
            self._store(name, entry, label)
        return entry

    async def _domain(self, name: str) -> tuple[Answer, str | None, bool]:
        """A custom domain's answer, the label it follows, and whether it is verified."""
        if (
            name == self.root_domain
            or name.endswith(self._root_suffix)
            or name.rpartition(".")[2].isdigit()
        ):
            # The root itself, deeper than one label under it, or an IP address: never a
            # domain (the API refuses such names), so no query either.
            return None, None, False
        self._queries += 1
        domain = await queries.verified_domain(name)
        if domain is None:
            return None, None, False
        if domain.redirect_to is not None:
            # Tied to its label all the same: deleting the project announces its labels.
            return Redirect(name, domain.redirect_to), domain.label, True
        # Through the label's own cache entry: a domain costs no alias query while its
        # label is cached, and the label's moves reach it.
        target = (await self._lookup(domain.label))[0]
        if not isinstance(target, Target) or target.project_id != domain.project_id:
            # Nothing deployed there yet (or the label is another project's: never serve it).
            return None, domain.label, True
        return target.for_domain(name), domain.label, True

    def _store(self, name: str, entry: _Entry, label: str | None) -> None:
        self._unlink(name)
        self._entries[name] = entry
        self._entries.move_to_end(name)
        if label is not None:
            self._via[name] = label
            self._followers.setdefault(label, set()).add(name)
        while len(self._entries) > self.max_entries:
            self._unlink(self._entries.popitem(last=False)[0])

    def _drop(self, name: str) -> None:
        self._entries.pop(name, None)
        self._unlink(name)

    def _unlink(self, name: str) -> None:
        label = self._via.pop(name, None)
        if label is not None:
            followers = self._followers[label]
            followers.discard(name)
            if not followers:
                del self._followers[label]

    # --- invalidation ---------------------------------------------------------------------

    def invalidate(self, hostnames: Iterable[str] | None = None) -> None:
        """Forget these names, or everything when None. A name is an alias label (its custom
        domains go too), a custom domain, or a wildcard `*.<parent>` (every cached name one
        level under `<parent>` goes: it may now be served, or no longer)."""
        self._generation += 1
        if hostnames is None:
            self._entries.clear()
            self._via.clear()
            self._followers.clear()
            self._flushes += 1
            return
        for hostname in hostnames:
            name = hostname.strip().lower()
            self._drop(name)
            for follower in list(self._followers.get(name, ())):
                self._drop(follower)  # which unlinks it from `name`'s followers
            if name.startswith("*."):
                parent = name[2:]
                for cached in [key for key in self._entries if key.partition(".")[2] == parent]:
                    self._drop(cached)

    def set_push_active(self, active: bool) -> None:
        """Called by `AliasSubscriber`: while pushes arrive, polling the version is not needed.

        Either way the cache is emptied: entries cached while nobody listened may be stale.
        """
        self._push_active = active
        self._version = None
        self._next_poll = 0.0
        self.invalidate()

    def _check_beside(self) -> None:
        if self._checking is None or self._checking.done():
            self._checking = asyncio.get_running_loop().create_task(
                self._check_version(), name="lookup:version"
            )
            self._checking.add_done_callback(_log_failed_check)

    async def aclose(self) -> None:
        """Let a version check `peek` started end, or stop it after `CLOSE_WAIT_S` (the proxy
        is stopping). A query cancelled midway leaves its connection for the collector, so
        one that is answering is waited for."""
        if self._checking is not None:
            await asyncio.wait({self._checking}, timeout=CLOSE_WAIT_S)
            self._checking.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._checking

    async def _check_version(self) -> None:
        if self.poll_interval is None or self._push_active or self._clock() < self._next_poll:
            return
        async with self._poll_lock:
            if self._clock() < self._next_poll:
                return  # another request checked while we waited for the lock
            self._version_checks += 1
            version = await queries.version()
            self._next_poll = self._clock() + self.poll_interval
        # The first version read has nothing to compare with, and nothing cached to flush.
        changed = self._version is not None and version != self._version
        self._version = version
        if changed:
            log.debug("aliases or domains changed; lookup cache flushed")
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


def _log_failed_check(task: asyncio.Task[None]) -> None:
    # Nobody awaits a check `peek` started: say why it failed (the next request retries it).
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("alias version check failed", extra={"error": str(exc)})


def _consume_exception(task: asyncio.Task[_Entry]) -> None:
    # When every waiter was cancelled nobody reads the query's exception; reading it here keeps
    # asyncio from logging "Task exception was never retrieved" for a failure already raised.
    with contextlib.suppress(asyncio.CancelledError):
        task.exception()
