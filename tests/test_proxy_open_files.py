"""`OpenFiles`: which large files the proxy keeps open for sendfile, and when it lets them go.

A descriptor is opened only for a file the object cache holds, from storage on this machine,
reached through no symlink; it is given only for the size it was opened at; and descriptors
are bounded, closed when the cache lets their bytes go, and all closed when the proxy stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from app.storage import Storage
from app.storage.local import LocalStorage
from app.storage.s3 import S3Storage, s3_client
from proxy.asgi import create_proxy_from_env, running
from proxy.cache import ObjectCache
from proxy.open_files import OpenFiles, raise_descriptor_limit
from tests.support import s3_bucket
from tests.support.s3_bucket import BUCKET

pytestmark = pytest.mark.anyio

aws = s3_bucket.aws
bucket = s3_bucket.bucket

BODY = bytes(range(256)) * 300


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


@pytest.fixture
def cache() -> ObjectCache:
    return ObjectCache(64 * 1024 * 1024, max_object_fraction=1)


@pytest.fixture
def files(local: LocalStorage, cache: ObjectCache) -> Iterator[OpenFiles]:
    opened = OpenFiles(local, cache, limit=2)
    yield opened
    opened.close()


async def cached(storage: Storage, cache: ObjectCache, key: str, body: bytes = BODY) -> None:
    await storage.put(key, body)
    await cache.get_or_load(key, lambda: storage.get(key))


def read_all(fd: int, size: int) -> bytes:
    return os.pread(fd, size + 1, 0)


async def open_one(local: LocalStorage, cache: ObjectCache, files: OpenFiles, key: str) -> int:
    """Put `BODY` under `key`, cache it, open it; its descriptor."""
    await cached(local, cache, key)
    await files.add(key)
    fd = files.get(key, len(BODY))
    assert fd is not None
    return fd


async def test_a_cached_local_file_is_opened_and_given_for_its_own_size(
    local: LocalStorage, cache: ObjectCache, files: OpenFiles
) -> None:
    fd = await open_one(local, cache, files, "p/d/big.bin")

    assert read_all(fd, len(BODY)) == BODY
    # Bytes of another length are not what this file holds: they are written from memory.
    assert files.get("p/d/big.bin", len(BODY) - 1) is None
    assert files.get("p/d/other.bin", len(BODY)) is None


async def test_a_file_the_cache_does_not_hold_is_not_opened(
    local: LocalStorage, files: OpenFiles
) -> None:
    await local.put("p/d/big.bin", BODY)

    await files.add("p/d/big.bin")

    assert len(files) == 0


async def test_a_symlink_in_the_store_is_not_followed(
    tmp_path: Path, local: LocalStorage, cache: ObjectCache, files: OpenFiles
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"another tenant's bytes")
    await cached(local, cache, "p/d/big.bin")
    await cached(local, cache, "p/e/big.bin")
    (local.root / "p/d/big.bin").unlink()
    (local.root / "p/d/big.bin").symlink_to(secret)
    (local.root / "p/e").rename(local.root / "p/e-real")
    (local.root / "p/e").symlink_to(local.root / "p/e-real")

    await files.add("p/d/big.bin")
    await files.add("p/e/big.bin")

    assert len(files) == 0


async def test_requests_opening_one_file_at_once_keep_one_descriptor(
    local: LocalStorage, cache: ObjectCache, files: OpenFiles
) -> None:
    await cached(local, cache, "p/d/big.bin")

    await asyncio.gather(*[files.add("p/d/big.bin") for _ in range(4)])

    assert len(files) == 1
    assert _descriptors_of(str(local.root / "p/d/big.bin")) == 1


async def test_a_link_to_another_tenants_file_in_the_store_is_not_opened(
    local: LocalStorage, cache: ObjectCache, files: OpenFiles
) -> None:
    # Both inside the store: a check of "inside the root" alone would follow this link.
    theirs = bytes(reversed(BODY))
    await local.put("__outputs/2/d2/big.bin", theirs)
    await cached(local, cache, "__outputs/1/d1/big.bin")
    mine = local.root / "__outputs/1/d1/big.bin"
    mine.unlink()
    mine.symlink_to(local.root / "__outputs/2/d2/big.bin")

    await files.add("__outputs/1/d1/big.bin")

    assert len(files) == 0
    assert files.get("__outputs/1/d1/big.bin", len(theirs)) is None


async def test_storage_elsewhere_opens_nothing(bucket: Any, cache: ObjectCache) -> None:
    storage = S3Storage(s3_client(), BUCKET, "p")
    await cached(storage, cache, "d/big.bin")
    files = OpenFiles(storage, cache)

    await files.add("d/big.bin")

    assert len(files) == 0
    assert files.get("d/big.bin", len(BODY)) is None


async def test_descriptors_are_bounded_least_recently_sent_first(
    local: LocalStorage, cache: ObjectCache, files: OpenFiles
) -> None:
    for name in ("a", "b", "c"):
        await cached(local, cache, f"p/d/{name}.bin")
    await files.add("p/d/a.bin")
    await files.add("p/d/b.bin")
    assert files.get("p/d/a.bin", len(BODY)) is not None  # a is now the most recent

    await files.add("p/d/c.bin")

    assert len(files) == 2
    assert files.get("p/d/b.bin", len(BODY)) is None
    assert files.get("p/d/a.bin", len(BODY)) is not None
    assert files.get("p/d/c.bin", len(BODY)) is not None


async def test_a_file_the_cache_let_go_is_closed_at_the_next_open(
    local: LocalStorage, cache: ObjectCache, files: OpenFiles
) -> None:
    await open_one(local, cache, files, "p/d/a.bin")
    cache.discard("p/d/a.bin")
    # Retention deleted it: the open descriptor is all that still holds its disk space.
    (local.root / "p/d/a.bin").unlink()

    fd_b = await open_one(local, cache, files, "p/d/b.bin")

    assert files.get("p/d/a.bin", len(BODY)) is None
    assert len(files) == 1
    assert read_all(fd_b, len(BODY)) == BODY


async def test_stopping_the_proxy_closes_every_descriptor(settings: Settings) -> None:
    async with running(settings) as proxy:
        await cached(proxy.storage, proxy.cache, "p/d/big.bin")
        await proxy.files.add("p/d/big.bin")
        fd = proxy.files.get("p/d/big.bin", len(BODY))
        assert fd is not None
        target = os.readlink(f"/proc/self/fd/{fd}")

    assert len(proxy.files) == 0
    assert not _open_anywhere(target)


def _open_anywhere(path: str) -> bool:
    """Whether this process holds a descriptor of the file at `path`."""
    return _descriptors_of(path) > 0


def _descriptors_of(path: str) -> int:
    """How many descriptors this process holds of the file at `path`."""
    found = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed since it was listed
            found += os.readlink(f"/proc/self/fd/{name}") == path
    return found


@pytest.fixture
def lowered_soft_limit() -> Iterator[tuple[int, int]]:
    """This process's descriptor limit with its soft part lowered by one, restored after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft - 1, hard))
    try:
        yield soft - 1, hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_each_proxy_worker_raises_its_descriptor_limit_to_the_hard_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lowered_soft_limit: tuple[int, int]
) -> None:
    soft, hard = lowered_soft_limit
    for name in [name for name in os.environ if name.startswith("SCALEMESH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SCALEMESH_DATA_DIR", str(tmp_path / "data"))
    expected = soft if hard == resource.RLIM_INFINITY else hard

    create_proxy_from_env()  # what each `scalemesh serve proxy` worker calls first

    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (expected, hard)
    assert raise_descriptor_limit() == expected  # already raised: left as it is
