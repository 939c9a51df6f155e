"""The storage adapters' shared contract: a directory and S3 (moto) behave the same."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from app.settings import Settings
from app.storage import STREAM_CHUNK, ObjectNotFound, Storage, StorageError
from app.storage.choice import storage_from_settings
from app.storage.local import LocalStorage
from app.storage.s3 import S3Storage, s3_client
from tests.support import s3_bucket
from tests.support.s3_bucket import BUCKET

pytestmark = pytest.mark.anyio

# The shared fixtures, bound here: pytest finds a fixture by its name in the test's module.
aws = s3_bucket.aws
bucket = s3_bucket.bucket


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["local", "s3", "s3-prefixed"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "storage")
    request.getfixturevalue("bucket")
    return S3Storage(s3_client(), BUCKET, "prod/" if request.param == "s3-prefixed" else "")


# --- the contract ----------------------------------------------------------------------------


async def test_put_then_get_exists_and_list(storage: Storage) -> None:
    await storage.put("__outputs/1/abc/index.html", b"<h1>hi</h1>", content_type="text/html")
    await storage.put("__outputs/1/abc/assets/app.js", b"alert(1)")

    assert await storage.get("__outputs/1/abc/index.html") == b"<h1>hi</h1>"
    assert await storage.exists("__outputs/1/abc/assets/app.js")
    assert await storage.list("__outputs/1/abc/") == [
        "__outputs/1/abc/assets/app.js",
        "__outputs/1/abc/index.html",
    ]


async def test_put_overwrites(storage: Storage) -> None:
    await storage.put("a/b.txt", b"first, and longer")
    await storage.put("a/b.txt", b"second")

    assert await storage.get("a/b.txt") == b"second"
    assert await storage.list("") == ["a/b.txt"]


async def test_binary_and_empty_data_round_trip(storage: Storage) -> None:
    blob = bytes(range(256)) * 1000 + b"\x00\r\n\xff"
    await storage.put("bin/blob", blob)
    await storage.put("bin/empty", b"")

    assert await storage.get("bin/blob") == blob
    assert await storage.get("bin/empty") == b""


async def test_a_missing_key(storage: Storage) -> None:
    await storage.put("dir/file", b"x")

    for key in ("nope", "dir/nope", "dir", "dir/file/deeper"):
        assert not await storage.exists(key)
        with pytest.raises(ObjectNotFound) as caught:
            await storage.get(key)
        # Callers may catch either name.
        assert isinstance(caught.value, StorageError)
        assert isinstance(caught.value, FileNotFoundError)


async def test_list_matches_by_string_prefix_and_sorts(storage: Storage) -> None:
    for key in ("b/2", "b/10", "b/1/x", "bc", "a", "b/1/y/z"):
        await storage.put(key, b".")

    assert await storage.list("") == ["a", "b/1/x", "b/1/y/z", "b/10", "b/2", "bc"]
    assert await storage.list("b/1") == ["b/1/x", "b/1/y/z", "b/10"]
    assert await storage.list("b/1/") == ["b/1/x", "b/1/y/z"]
    assert await storage.list("b") == ["b/1/x", "b/1/y/z", "b/10", "b/2", "bc"]
    assert await storage.list("nothing/here/") == []
    assert await storage.list("a/") == []


async def test_delete_prefix_deletes_only_under_it(storage: Storage) -> None:
    for key in ("__outputs/1/abc/index.html", "__outputs/1/abc/x/y.js", "__outputs/1/abcd/keep"):
        await storage.put(key, b".")

    assert await storage.delete_prefix("__outputs/1/abc/") == 2

    assert await storage.list("") == ["__outputs/1/abcd/keep"]
    assert not await storage.exists("__outputs/1/abc/index.html")
    assert await storage.delete_prefix("__outputs/1/abc/") == 0
    # The key can be written again after its directory went away.
    await storage.put("__outputs/1/abc/index.html", b"again")
    assert await storage.get("__outputs/1/abc/index.html") == b"again"


async def test_delete_removes_the_keys_given_and_tolerates_missing_ones(storage: Storage) -> None:
    for key in ("__logs/a.ndjson", "__logs/ab.ndjson", "__logs/b.ndjson", "__logs/c.ndjson"):
        await storage.put(key, b"{}")

    await storage.delete("__logs/a.ndjson")
    await storage.delete("__logs/a.ndjson")  # already gone: no error
    await storage.delete("__logs/b.ndjson", "__logs/never.ndjson", "__logs/c.ndjson")
    await storage.delete()  # nothing to delete

    assert await storage.list("") == ["__logs/ab.ndjson"]
    with pytest.raises(ValueError, match="escape"):
        await storage.delete("../escape")


async def test_delete_prefix_past_one_batch(storage: Storage) -> None:
    # S3 lists 1000 keys a page and deletes 1000 a request: 1001 crosses both limits.
    for number in range(1001):
        await storage.put(f"big/{number:04d}", b"")
    await storage.put("other", b"")

    assert len(await storage.list("big/")) == 1001
    assert await storage.delete_prefix("big/") == 1001
    assert await storage.list("") == ["other"]


# --- size, stream, path_of ------------------------------------------------------------------


async def collect(storage: Storage, key: str, start: int = 0, stop: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in storage.stream(key, start, stop)])


async def test_size_reads_no_bytes_and_knows_missing_keys(storage: Storage) -> None:
    await storage.put("a/blob", b"x" * 1234)
    await storage.put("a/empty", b"")

    assert await storage.size("a/blob") == 1234
    assert await storage.size("a/empty") == 0
    for key in ("nope", "a", "a/blob/deeper"):
        with pytest.raises(ObjectNotFound):
            await storage.size(key)


async def test_stream_yields_the_range_asked_for_in_bounded_pieces(storage: Storage) -> None:
    blob = bytes(range(256)) * (3 * STREAM_CHUNK // 256) + b"tail"
    await storage.put("big/blob", blob)

    pieces = [chunk async for chunk in storage.stream("big/blob")]
    assert b"".join(pieces) == blob
    assert max(map(len, pieces)) <= STREAM_CHUNK
    assert await collect(storage, "big/blob", 10, 20) == blob[10:20]
    assert (
        await collect(storage, "big/blob", STREAM_CHUNK - 3, 2 * STREAM_CHUNK + 5)
        == (blob[STREAM_CHUNK - 3 : 2 * STREAM_CHUNK + 5])
    )
    assert await collect(storage, "big/blob", len(blob) - 4) == b"tail"
    # A stop past the end reads to the end.
    assert await collect(storage, "big/blob", len(blob) - 2, len(blob) + 100) == b"il"
    assert await collect(storage, "big/blob", 5, 5) == b""


async def test_stream_of_an_empty_or_missing_object(storage: Storage) -> None:
    await storage.put("dir/empty", b"")

    assert await collect(storage, "dir/empty") == b""
    for key in ("nope", "dir"):
        with pytest.raises(ObjectNotFound):
            await collect(storage, key)
        with pytest.raises(ObjectNotFound):
            await collect(storage, key, 0, 10)


async def test_a_stream_closed_early_releases_what_it_held(storage: Storage) -> None:
    await storage.put("big/blob", b"z" * (2 * STREAM_CHUNK))

    chunks = storage.stream("big/blob")
    async with contextlib.aclosing(chunks):
        assert await anext(chunks) == b"z" * STREAM_CHUNK
    # Closed mid-way: nothing more comes, and the object can still be replaced and read.
    with pytest.raises(StopAsyncIteration):
        await anext(chunks)
    await storage.put("big/blob", b"new")
    assert await collect(storage, "big/blob") == b"new"


async def test_path_of_is_the_file_only_where_there_is_one(storage: Storage) -> None:
    await storage.put("site/index.html", b"<h1>hi</h1>")

    path = await storage.path_of("site/index.html")

    if isinstance(storage, LocalStorage):
        assert path is not None
        assert path.is_absolute()
        assert path.read_bytes() == b"<h1>hi</h1>"
    else:
        assert path is None


async def test_open_file_is_the_file_only_where_there_is_one(storage: Storage) -> None:
    await storage.put("site/index.html", b"<h1>hi</h1>")

    fd = await storage.open_file("site/index.html")

    if isinstance(storage, LocalStorage):
        assert fd is not None
        try:
            assert os.pread(fd, 100, 0) == b"<h1>hi</h1>"
            with pytest.raises(OSError, match="Bad file descriptor"):
                os.write(fd, b"x")  # read-only
        finally:
            os.close(fd)
        with pytest.raises(ObjectNotFound):
            await storage.open_file("site/missing.html")
    else:
        assert fd is None


async def test_local_storage_follows_no_symlink_out_of_its_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not yours")
    (tmp_path / "store").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "store")  # the root itself may be a link
    storage = LocalStorage(tmp_path / "via")
    await storage.put("site/index.html", b"ok")
    (tmp_path / "store" / "site" / "leak").symlink_to(outside / "secret")
    (tmp_path / "store" / "linked").symlink_to(outside, target_is_directory=True)
    (tmp_path / "store" / "site" / "alias").symlink_to(tmp_path / "store" / "site" / "index.html")

    for key in ("site/leak", "linked/secret", "site/alias", "site"):
        assert not await storage.exists(key)
        reads = (storage.get, storage.size, storage.path_of, storage.open_file)
        for read in (*reads, lambda k: collect(storage, k)):
            with pytest.raises(ObjectNotFound):
                await read(key)
    assert await storage.path_of("site/index.html") == tmp_path / "store" / "site" / "index.html"
    assert await storage.get("site/index.html") == b"ok"


BAD_KEYS = [
    "",
    "/etc/passwd",
    "..",
    "a/../b",
    "a/./b",
    ".",
    "a//b",
    "a/",
    "a\\b",
    "a\0b",
    ".~scalemesh-1234/x",
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_invalid_keys_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError, match="storage key"):
        await storage.put(key, b"x")
    with pytest.raises(ValueError, match="storage key"):
        await storage.get(key)
    with pytest.raises(ValueError, match="storage key"):
        await storage.exists(key)
    with pytest.raises(ValueError, match="storage key"):
        await storage.size(key)
    with pytest.raises(ValueError, match="storage key"):
        await collect(storage, key)
    with pytest.raises(ValueError, match="storage key"):
        await storage.path_of(key)
    with pytest.raises(ValueError, match="storage key"):
        await storage.open_file(key)


@pytest.mark.parametrize("prefix", ["/abs/", "a//", "../", "a/../b/", "a\\b/"])
async def test_invalid_prefixes_are_refused(storage: Storage, prefix: str) -> None:
    with pytest.raises(ValueError, match="storage key"):
        await storage.list(prefix)
    with pytest.raises(ValueError, match="storage key"):
        await storage.delete_prefix(prefix)


@pytest.mark.parametrize("prefix", ["", "a", "__outputs/1/abc"])
async def test_delete_prefix_needs_a_trailing_slash(storage: Storage, prefix: str) -> None:
    await storage.put("__outputs/1/abc/index.html", b".")

    with pytest.raises(ValueError, match="ending with '/'"):
        await storage.delete_prefix(prefix)
    assert await storage.exists("__outputs/1/abc/index.html")


async def test_check_passes_on_a_working_store(storage: Storage) -> None:
    await storage.check()


def test_implementations_pass_for_the_protocol(storage: Storage) -> None:
    # Litestar checks injected dependencies with isinstance() against the annotated type.
    assert isinstance(storage, Storage)
    assert not isinstance(object(), Storage)


# --- construction ---------------------------------------------------------------------------


def test_storage_is_chosen_by_settings(make_settings: Callable[..., Settings]) -> None:
    s3 = storage_from_settings(make_settings(SCALEMESH_STORAGE_URL="s3://deployments/p").storage)
    local = storage_from_settings(make_settings().storage)

    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix) == ("deployments", "p/")
    assert isinstance(local, LocalStorage)
