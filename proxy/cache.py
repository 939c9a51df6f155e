"""The proxy's in-memory cache of deployment files: an LRU bounded by bytes, with single-flight.

A deployment's files never change once it is ready (a new build is a new deployment under a new
storage prefix), so an object keyed by its storage key can be cached for as long as memory
allows, with no invalidation. What this module guards against instead:

- memory: the LRU is bounded by total bytes (`SCALEMESH_PROXY_CACHE_MB`), and one big object
  (a video, a source map) may not push out hundreds of small ones, so objects larger than a
  fraction of the budget are served but never kept;
- thundering herds: N concurrent misses for one key run the loader once and share its result
  (or its exception, which is not cached, so the next request tries again).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.settings import Settings

MIB = 1024 * 1024
DEFAULT_MAX_OBJECT_FRACTION = 1 / 8

Loader = Callable[[], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    """Requests answered from memory."""
    misses: int
    """Requests that had to wait for a load (their own or one already running)."""
    loads: int
    """Times a loader was called; `misses - loads` requests joined a load in flight."""
    failures: int
    """Loads that raised."""
    bypassed: int
    """Loaded objects too big to keep."""
    evictions: int
    entries: int
    bytes: int
    """Bytes held now (never more than `max_bytes`)."""
    max_bytes: int


class ObjectCache:
    """An async byte cache for immutable objects, bounded by total size."""

    def __init__(
        self, max_bytes: int, *, max_object_fraction: float = DEFAULT_MAX_OBJECT_FRACTION
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, not {max_bytes}")
        if not 0 < max_object_fraction <= 1:
            raise ValueError(f"max_object_fraction must be in (0, 1], not {max_object_fraction}")
        self.max_bytes = max_bytes
        self.max_object_bytes = int(max_bytes * max_object_fraction)
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._loading: dict[str, asyncio.Task[bytes]] = {}
        self._hits = self._misses = self._loads = self._failures = 0
        self._bypassed = self._evictions = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectCache:
        return cls(settings.proxy_cache_mb * MIB)

    def get(self, key: str) -> bytes | None:
        """The cached bytes for `key`, or None; a hit makes the entry most recently used."""
        data = self._entries.get(key)
        if data is not None:
            self._entries.move_to_end(key)
            self._hits += 1
        return data

    async def get_or_load(self, key: str, loader: Loader) -> bytes:
        """The bytes for `key`, from memory or else from `loader` (called once per key at a time).

        A loader's exception reaches every caller waiting on that load and is not remembered.
        """
        cached = self.get(key)
        if cached is not None:
            return cached
        self._misses += 1
        task = self._loading.get(key)
        if task is None:
            # The load runs in a task of its own, not in the first caller: if that caller is
            # cancelled (its client went away), the others still get their bytes.
            task = asyncio.create_task(self._load(key, loader), name=f"cache-load:{key}")
            self._loading[key] = task
            task.add_done_callback(_consume_exception)
        # shield: one waiter being cancelled must not cancel the load the others wait for.
        return await asyncio.shield(task)

    async def _load(self, key: str, loader: Loader) -> bytes:
        self._loads += 1
        try:
            data = await loader()
        except BaseException:
            self._failures += 1
            raise
        finally:
            del self._loading[key]
        self._store(key, data)
        return data

    def _store(self, key: str, data: bytes) -> None:
        size = len(data)
        if size > self.max_object_bytes:
            self._bypassed += 1
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._entries[key] = data
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted)
            self._evictions += 1

    def discard(self, key: str) -> None:
        """Forget `key` (objects are immutable, so this is for tests and deleted deployments)."""
        data = self._entries.pop(key, None)
        if data is not None:
            self._bytes -= len(data)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def stats(self) -> CacheStats:
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            loads=self._loads,
            failures=self._failures,
            bypassed=self._bypassed,
            evictions=self._evictions,
            entries=len(self._entries),
            bytes=self._bytes,
            max_bytes=self.max_bytes,
        )


def _consume_exception(task: asyncio.Task[bytes]) -> None:
    # When every waiter was cancelled nobody reads the load's exception; reading it here keeps
    # asyncio from logging "Task exception was never retrieved" for a failure already handled.
    with contextlib.suppress(asyncio.CancelledError):
        task.exception()
