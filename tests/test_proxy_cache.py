"""The proxy's object cache: LRU by bytes, big objects not kept, single-flight loads, stats."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from app.settings import Settings
from app.storage import ObjectNotFound
from app.storage.local import LocalStorage
from proxy.cache import MIB, ObjectCache
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def loader_of(data: bytes, calls: list[str], key: str = "") -> Callable[[], Awaitable[bytes]]:
    async def load() -> bytes:
        calls.append(key)
        return data

    return load


async def test_a_hit_does_not_call_the_loader() -> None:
    cache = ObjectCache(1000)
    calls: list[str] = []
    assert await cache.get_or_load("a", loader_of(b"x" * 10, calls)) == b"x" * 10
    assert await cache.get_or_load("a", loader_of(b"other", calls)) == b"x" * 10
    assert calls == [""]
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.loads, stats.bytes, stats.entries) == (1, 1, 1, 10, 1)


async def test_least_recently_used_objects_go_first_when_bytes_run_out() -> None:
    cache = ObjectCache(800)  # objects up to 100 bytes are kept
    calls: list[str] = []
    for key in "abcdefgh":
        await cache.get_or_load(key, loader_of(b"x" * 100, calls, key))
    assert cache.stats.bytes == 800
    await cache.get_or_load("a", loader_of(b"", calls))  # a hit: "a" is now the newest
    await cache.get_or_load("i", loader_of(b"y" * 100, calls, "i"))
    assert "b" not in cache
    assert "a" in cache
    assert "i" in cache
    await cache.get_or_load("j", loader_of(b"z" * 50, calls, "j"))
    assert "c" not in cache
    stats = cache.stats
    assert stats.bytes <= 800
    assert stats.bytes == 750
    assert stats.evictions == 2
    assert len(cache) == 8


async def test_objects_bigger_than_an_eighth_of_the_budget_are_served_but_not_kept() -> None:
    cache = ObjectCache(800)
    calls: list[str] = []
    big = b"x" * 101
    assert await cache.get_or_load("big", loader_of(big, calls)) == big
    assert await cache.get_or_load("big", loader_of(big, calls)) == big
    assert len(calls) == 2
    assert "big" not in cache
    assert cache.stats.bypassed == 2
    assert cache.stats.bytes == 0


async def test_fifty_concurrent_misses_load_once() -> None:
    cache = ObjectCache(MIB)
    calls: list[str] = []
    release = asyncio.Event()

    async def slow() -> bytes:
        calls.append("load")
        await release.wait()
        return b"payload"

    waiters = [asyncio.create_task(cache.get_or_load("k", slow)) for _ in range(50)]
    await eventually(lambda: calls == ["load"])  # every waiter asked before the load began
    release.set()
    assert await asyncio.gather(*waiters) == [b"payload"] * 50
    assert calls == ["load"]
    stats = cache.stats
    assert (stats.misses, stats.loads, stats.hits) == (50, 1, 0)


async def test_a_failed_load_reaches_every_waiter_and_is_not_cached() -> None:
    cache = ObjectCache(MIB)
    attempts: list[int] = []
    release = asyncio.Event()

    async def flaky() -> bytes:
        attempts.append(1)
        await release.wait()
        if len(attempts) == 1:
            raise ObjectNotFound("k")
        return b"second time lucky"

    waiters = [asyncio.create_task(cache.get_or_load("k", flaky)) for _ in range(10)]
    await eventually(lambda: attempts == [1])
    release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(result, ObjectNotFound) for result in results)
    assert "k" not in cache
    assert await cache.get_or_load("k", flaky) == b"second time lucky"
    assert len(attempts) == 2
    assert cache.stats.failures == 1


async def test_a_cancelled_waiter_does_not_cancel_the_load_for_the_others() -> None:
    cache = ObjectCache(MIB)
    loading, release = asyncio.Event(), asyncio.Event()

    async def slow() -> bytes:
        loading.set()
        await release.wait()
        return b"data"

    first = asyncio.create_task(cache.get_or_load("k", slow))
    second = asyncio.create_task(cache.get_or_load("k", slow))
    await loading.wait()
    first.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await second == b"data"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert "k" in cache


async def test_a_load_nobody_waits_for_any_more_fails_quietly() -> None:
    cache = ObjectCache(MIB)
    loading, release = asyncio.Event(), asyncio.Event()

    async def failing() -> bytes:
        loading.set()
        await release.wait()
        raise ObjectNotFound("k")

    waiter = asyncio.create_task(cache.get_or_load("k", failing))
    await loading.wait()
    waiter.cancel()
    release.set()
    await eventually(lambda: cache.stats.failures == 1, what="the orphaned load failing")
    assert "k" not in cache


async def test_storage_as_the_loader(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put("__outputs/1/d/index.html", b"<h1>hi</h1>")
    cache = ObjectCache(MIB)
    key = "__outputs/1/d/index.html"
    assert await cache.get_or_load(key, lambda: storage.get(key)) == b"<h1>hi</h1>"
    assert cache.get(key) == b"<h1>hi</h1>"
    assert cache.get("missing") is None


def test_sizes_and_settings(make_settings: Callable[..., Settings]) -> None:
    cache = ObjectCache.from_settings(make_settings(SCALEMESH_PROXY_CACHE_MB="16"))
    assert cache.max_bytes == 16 * MIB
    assert cache.max_object_bytes == 2 * MIB
    with pytest.raises(ValueError, match="negative"):
        ObjectCache(-1)
    with pytest.raises(ValueError, match="fraction"):
        ObjectCache(10, max_object_fraction=0)


async def test_discard_and_clear() -> None:
    cache = ObjectCache(1000)
    calls: list[str] = []
    await cache.get_or_load("a", loader_of(b"x" * 10, calls))
    await cache.get_or_load("b", loader_of(b"y" * 20, calls))
    cache.discard("a")
    cache.discard("missing")
    assert cache.stats.bytes == 20
    cache.clear()
    assert cache.stats.bytes == 0
    assert len(cache) == 0


async def test_replacing_a_key_keeps_the_byte_count_right() -> None:
    cache = ObjectCache(1000)
    cache._store("a", b"x" * 10)
    cache._store("a", b"y" * 30)
    assert cache.stats.bytes == 30
    assert cache.get("a") == b"y" * 30
