"""The storage adapters' shared contract: a directory and S3 (moto) behave the same."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from moto import mock_aws

from app.settings import Settings
from app.storage import (
    LocalStorage,
    ObjectNotFound,
    S3Storage,
    Storage,
    StorageError,
    s3_client,
    storage_from_settings,
)

pytestmark = pytest.mark.anyio

BUCKET = "deployments"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def bucket(aws: None) -> Any:
    """A raw boto3 client on a moto bucket, for looking behind the adapter's back."""
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


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


# --- S3 specifics ---------------------------------------------------------------------------


async def test_s3_sends_the_headers_the_proxy_serves(bucket: Any) -> None:
    storage = S3Storage(s3_client(), BUCKET, "p")
    await storage.put(
        "site/app.js.br",
        b"...",
        content_type="text/javascript; charset=utf-8",
        cache_control="public, max-age=31536000, immutable",
        content_encoding="br",
    )
    await storage.put("site/raw", b"...")

    head = bucket.head_object(Bucket=BUCKET, Key="p/site/app.js.br")
    assert head["ContentType"] == "text/javascript; charset=utf-8"
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    assert head["ContentEncoding"] == "br"
    plain = bucket.head_object(Bucket=BUCKET, Key="p/site/raw")
    assert plain["ContentType"] == "application/octet-stream"
    assert "CacheControl" not in plain
    assert "ContentEncoding" not in plain


async def test_s3_prefix_isolates_keys(bucket: Any) -> None:
    bucket.put_object(Bucket=BUCKET, Key="outside", Body=b"o")
    bucket.put_object(Bucket=BUCKET, Key="pq/near-miss", Body=b"o")
    bucket.put_object(Bucket=BUCKET, Key="p/inside", Body=b"i")
    storage = S3Storage(s3_client(), BUCKET, "p/")

    assert await storage.list("") == ["inside"]
    assert not await storage.exists("outside")
    with pytest.raises(ObjectNotFound):
        await storage.get("outside")
    assert await storage.get("inside") == b"i"

    await storage.put("outside", b"mine")
    assert await storage.delete_prefix("q/") == 0
    assert bucket.get_object(Bucket=BUCKET, Key="outside")["Body"].read() == b"o"
    assert bucket.get_object(Bucket=BUCKET, Key="p/outside")["Body"].read() == b"mine"
    assert [item["Key"] for item in bucket.list_objects_v2(Bucket=BUCKET)["Contents"]] == [
        "outside",
        "p/inside",
        "p/outside",
        "pq/near-miss",
    ]


@pytest.mark.parametrize(
    ("given", "expected"), [("", ""), ("/", ""), ("p", "p/"), ("/p/q/", "p/q/"), ("p/", "p/")]
)
def test_s3_prefix_is_normalised(given: str, expected: str) -> None:
    assert S3Storage(object(), BUCKET, given).prefix == expected


async def test_s3_errors_carry_the_code(aws: None) -> None:
    storage = S3Storage(s3_client(), "no-such-bucket")

    with pytest.raises(StorageError, match="s3://no-such-bucket/k: NoSuchBucket") as caught:
        await storage.get("k")
    assert not isinstance(caught.value, ObjectNotFound)
    with pytest.raises(StorageError, match="NoSuchBucket"):
        await storage.put("k", b"x")
    with pytest.raises(StorageError, match="NoSuchBucket"):
        await storage.list("")
    with pytest.raises(StorageError, match="NoSuchBucket"):
        await storage.delete_prefix("a/")


async def test_s3_objects_that_would_not_delete_are_an_error() -> None:
    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response(
            "list_objects_v2",
            {"Contents": [{"Key": "p/a/1"}, {"Key": "p/a/2"}], "IsTruncated": False},
            {"Bucket": BUCKET, "Prefix": "p/a/"},
        )
        stub.add_response(
            "delete_objects",
            {"Errors": [{"Key": "p/a/2", "Code": "AccessDenied", "Message": "no"}]},
            {
                "Bucket": BUCKET,
                "Delete": {"Objects": [{"Key": "p/a/1"}, {"Key": "p/a/2"}], "Quiet": True},
            },
        )
        storage = S3Storage(client, BUCKET, "p/")

        with pytest.raises(
            StorageError, match=r"1 object\(s\) not deleted, first p/a/2: AccessDenied"
        ):
            await storage.delete_prefix("a/")


def unreachable_s3() -> S3Storage:
    # One attempt: the default client retries a refused connection for a second or so.
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    return S3Storage(client, BUCKET)


@pytest.mark.parametrize(
    "operation",
    [
        lambda storage: storage.put("k", b"x"),
        lambda storage: storage.get("k"),
        lambda storage: storage.exists("k"),
        lambda storage: storage.list(""),
        lambda storage: storage.delete_prefix("a/"),
        lambda storage: storage.check(),
    ],
    ids=["put", "get", "exists", "list", "delete_prefix", "check"],
)
async def test_an_unreachable_endpoint_is_a_storage_error(
    operation: Callable[[S3Storage], Any],
) -> None:
    with pytest.raises(StorageError, match="Could not connect") as caught:
        await operation(unreachable_s3())
    assert not isinstance(caught.value, ObjectNotFound)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_s3_client_endpoint_errors_become_storage_errors() -> None:
    storage = S3Storage(s3_client(f"http://127.0.0.1:{closed_port()}"), "bucket")

    with pytest.raises(StorageError, match="bucket bucket"):
        await storage.check()


async def test_s3_check_names_a_missing_bucket(aws: None) -> None:
    with pytest.raises(StorageError, match="bucket no-such-bucket: NoSuchBucket") as caught:
        await S3Storage(s3_client(), "no-such-bucket").check()
    assert not isinstance(caught.value, ObjectNotFound)


# --- local specifics ------------------------------------------------------------------------


async def test_local_check_fails_when_the_root_cannot_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")

    with pytest.raises(StorageError, match="is not writable"):
        await LocalStorage(tmp_path / "file" / "storage").check()


async def test_local_files_land_under_the_root(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    await storage.put("a/b/c.txt", b"hello")

    assert (tmp_path / "root" / "a" / "b" / "c.txt").read_bytes() == b"hello"
    assert sorted(p.name for p in (tmp_path / "root" / "a" / "b").iterdir()) == ["c.txt"]


async def test_local_ignores_a_crashed_puts_temp_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    await storage.put("site/index.html", b".")
    (tmp_path / "site" / ".~scalemesh-0123456789abcdef").write_bytes(b"half")

    assert await storage.list("") == ["site/index.html"]
    assert await storage.delete_prefix("site/") == 1
    # The directory stays for the stray file; nothing is listed in it.
    assert await storage.list("") == []
    assert (tmp_path / "site").is_dir()


async def test_local_delete_prefix_removes_emptied_directories(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "s")
    await storage.put("d/1/x/y", b".")
    await storage.put("d/2", b".")

    assert await storage.delete_prefix("d/1/") == 1

    assert not (tmp_path / "s" / "d" / "1").exists()
    assert (tmp_path / "s" / "d" / "2").is_file()


async def test_local_file_system_errors_become_storage_errors(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    too_long = "x" * (os.pathconf(tmp_path, "PC_NAME_MAX") + 1)

    with pytest.raises(StorageError, match="cannot write"):
        await storage.put(too_long, b".")
    with pytest.raises(StorageError, match="cannot read"):
        await storage.get(too_long)
    with pytest.raises(StorageError, match="cannot look up"):
        await storage.exists(too_long)
    # The failed put cleaned up after itself.
    assert os.listdir(tmp_path) == []


async def test_local_a_key_cannot_also_be_a_directory(tmp_path: Path) -> None:
    # S3 allows both "a" and "a/b"; a file system cannot, so don't rely on it.
    storage = LocalStorage(tmp_path)
    await storage.put("a/b", b".")
    await storage.put("f", b".")

    with pytest.raises(StorageError, match="cannot write a"):
        await storage.put("a", b".")
    with pytest.raises(StorageError, match="cannot write f/g"):
        await storage.put("f/g", b".")
    # "a/b/" names a file's children: there are none, and the file stays.
    assert await storage.delete_prefix("a/b/") == 0
    assert await storage.list("") == ["a/b", "f"]


# --- construction ---------------------------------------------------------------------------


def test_storage_is_chosen_by_settings(make_settings: Callable[..., Settings]) -> None:
    s3 = storage_from_settings(make_settings(SCALEMESH_STORAGE_URL="s3://deployments/p").storage)
    local = storage_from_settings(make_settings().storage)

    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix) == ("deployments", "p/")
    assert isinstance(local, LocalStorage)


def test_s3_client_for_a_compatible_endpoint() -> None:
    client = s3_client("http://minio:9000")

    assert client.meta.endpoint_url == "http://minio:9000"
    assert client.meta.config.request_checksum_calculation == "when_required"
    assert client.meta.config.response_checksum_validation == "when_required"
