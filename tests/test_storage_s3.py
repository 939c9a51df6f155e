"""S3Storage on its own: headers, prefixes, error codes and unreachable endpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from app.storage import ObjectNotFound, StorageError
from app.storage import s3 as s3_module
from app.storage.s3 import S3Storage, s3_client
from tests.support import s3_bucket
from tests.support.ports import refused_port
from tests.support.s3_bucket import BUCKET

pytestmark = pytest.mark.anyio

# The shared fixtures, bound here: pytest finds a fixture by its name in the test's module.
aws = s3_bucket.aws
bucket = s3_bucket.bucket


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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


async def test_s3_streams_with_ranged_gets_of_one_window_each(
    bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "STREAM_WINDOW", 1000)
    client = s3_client()
    asked: list[str] = []
    client.meta.events.register(
        "before-call.s3.GetObject", lambda params, **_: asked.append(params["headers"]["Range"])
    )
    storage = S3Storage(client, BUCKET, "p")
    blob = bytes(range(256)) * 10
    await storage.put("big", blob)

    got = b"".join([chunk async for chunk in storage.stream("big", 100, 2300)])

    assert got == blob[100:2300]
    # Only the range asked for, a window per GET: S3 never sends the rest of the object.
    assert asked == ["bytes=100-1099", "bytes=1100-2099", "bytes=2100-2299"]


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


def unreachable_s3(port: int) -> S3Storage:
    # One attempt: the default client retries a refused connection for a second or so.
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
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
    with refused_port() as port, pytest.raises(StorageError, match="Could not connect") as caught:
        await operation(unreachable_s3(port))
    assert not isinstance(caught.value, ObjectNotFound)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


async def test_s3_client_endpoint_errors_become_storage_errors() -> None:
    with refused_port() as port:
        storage = S3Storage(s3_client(f"http://127.0.0.1:{port}"), "bucket")
        with pytest.raises(StorageError, match="bucket bucket"):
            await storage.check()


async def test_s3_check_names_a_missing_bucket(aws: None) -> None:
    with pytest.raises(StorageError, match="bucket no-such-bucket: NoSuchBucket") as caught:
        await S3Storage(s3_client(), "no-such-bucket").check()
    assert not isinstance(caught.value, ObjectNotFound)


def test_s3_client_for_a_compatible_endpoint() -> None:
    client = s3_client("http://minio:9000")

    assert client.meta.endpoint_url == "http://minio:9000"
    assert client.meta.config.request_checksum_calculation == "when_required"
    assert client.meta.config.response_checksum_validation == "when_required"
