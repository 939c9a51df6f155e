"""`S3Storage`: object storage in an S3 bucket (or an S3-compatible store), and its boto3 client."""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError

from app.storage import STREAM_CHUNK, ObjectNotFound, StorageError, check_key, check_prefix

T = TypeVar("T")

DELETE_BATCH = 1000
"""S3 `DeleteObjects` takes at most this many keys per request."""

STREAM_WINDOW = 16 * 1024 * 1024
"""Bytes asked for per ranged GET when streaming: each response is read in `STREAM_CHUNK`
pieces, and a long download is many short requests rather than one connection held for as
long as the slowest client takes."""


_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
"""S3 error codes meaning "no such object" (`HeadObject` has no body, so only "404")."""


class S3Storage:
    """A bucket (and optional key prefix) on S3 or an S3-compatible store.

    The client is a boto3 S3 client (see `s3_client`); boto3 is synchronous and thread-safe,
    so every call runs in a worker thread to keep the event loop free.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""

    async def _call(self, what: str, call: Callable[[], T]) -> T:
        """Run `call` in a thread; turn boto3's exceptions into ours, named after `what`."""

        def run() -> T:
            try:
                return call()
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", "error"))
                if code in _MISSING_CODES:
                    raise ObjectNotFound(what) from None
                raise StorageError(f"{what}: {code}") from None
            except BotoCoreError as exc:
                raise StorageError(f"{what}: {exc}") from None

        return await anyio.to_thread.run_sync(run)

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    async def check(self) -> None:
        def probe() -> None:
            self.client.head_bucket(Bucket=self.bucket)

        try:
            await self._call(f"bucket {self.bucket}", probe)
        except ObjectNotFound:
            # HeadBucket answers a bare 404 for a missing bucket.
            raise StorageError(f"bucket {self.bucket}: NoSuchBucket") from None

    async def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        cache_control: str | None = None,
        content_encoding: str | None = None,
    ) -> None:
        extra = {"ContentType": content_type}
        if cache_control is not None:
            extra["CacheControl"] = cache_control
        if content_encoding is not None:
            extra["ContentEncoding"] = content_encoding
        full_key = self.prefix + check_key(key)

        def put() -> None:
            self.client.put_object(Bucket=self.bucket, Key=full_key, Body=data, **extra)

        await self._call(self._where(key), put)

    async def get(self, key: str) -> bytes:
        full_key = self.prefix + check_key(key)

        def get() -> bytes:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=full_key)["Body"].read()
            return body

        try:
            return await self._call(self._where(key), get)
        except ObjectNotFound:
            raise ObjectNotFound(key) from None

    async def exists(self, key: str) -> bool:
        full_key = self.prefix + check_key(key)
        try:
            await self._call(
                self._where(key), lambda: self.client.head_object(Bucket=self.bucket, Key=full_key)
            )
        except ObjectNotFound:
            return False
        return True

    async def size(self, key: str) -> int:
        full_key = self.prefix + check_key(key)

        def head() -> int:
            return int(self.client.head_object(Bucket=self.bucket, Key=full_key)["ContentLength"])

        try:
            return await self._call(self._where(key), head)
        except ObjectNotFound:
            raise ObjectNotFound(key) from None

    async def stream(
        self, key: str, start: int = 0, stop: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        full_key = self.prefix + check_key(key)
        where = self._where(key)
        if stop is None:
            stop = await self.size(key)
        position = start
        while position < stop:
            last = min(position + STREAM_WINDOW, stop) - 1
            window = f"bytes={position}-{last}"

            def get(window: str = window) -> Any:
                return self.client.get_object(Bucket=self.bucket, Key=full_key, Range=window)

            try:
                body = (await self._call(where, get))["Body"]
            except ObjectNotFound:
                raise ObjectNotFound(key) from None

            def read(body: Any = body) -> bytes:
                piece: bytes = body.read(STREAM_CHUNK)
                return piece

            with contextlib.closing(body):
                while chunk := await self._call(where, read):
                    position += len(chunk)
                    yield chunk
            if position <= last:
                return  # the object ended before `stop`

    async def path_of(self, key: str) -> None:
        check_key(key)  # refused alike on every store

    async def open_file(self, key: str) -> None:
        check_key(key)

    async def list(
        self, prefix: str, *, start_after: str = "", limit: int | None = None
    ) -> list[str]:
        full_prefix = self.prefix + check_prefix(prefix)
        after = self.prefix + start_after if start_after else ""
        keys = await self._call(self._where(prefix), lambda: self._list(full_prefix, after, limit))
        # Keys go back out relative to our prefix: callers never see it.
        return sorted(key.removeprefix(self.prefix) for key in keys)

    def _list(
        self, full_prefix: str, start_after: str = "", limit: int | None = None
    ) -> builtins.list[str]:
        # S3 lists in key (UTF-8 byte) order, so StartAfter pages through it.
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket,
            Prefix=full_prefix,
            **({"StartAfter": start_after} if start_after else {}),
            PaginationConfig={"MaxItems": limit} if limit is not None else {},
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    async def delete(self, *keys: str) -> None:
        full_keys = [self.prefix + check_key(key) for key in keys]
        if full_keys:
            where = self._where(keys[0]) + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")
            await self._call(where, lambda: self._delete_objects(full_keys))

    async def delete_prefix(self, prefix: str) -> int:
        if not prefix.endswith("/"):
            raise ValueError(f"delete_prefix needs a prefix ending with '/', not {prefix!r}")
        full_prefix = self.prefix + check_prefix(prefix)

        def delete() -> int:
            keys = self._list(full_prefix)
            self._delete_objects(keys)
            return len(keys)

        return await self._call(self._where(prefix), delete)

    def _delete_objects(self, full_keys: builtins.list[str]) -> None:
        """DeleteObjects in batches; a key with no object counts as deleted, as S3 says."""
        for start in range(0, len(full_keys), DELETE_BATCH):
            batch = full_keys[start : start + DELETE_BATCH]
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            # DeleteObjects answers 200 even when some keys failed; they are listed here.
            if errors := response.get("Errors"):
                first = errors[0]
                raise StorageError(
                    f"{len(errors)} object(s) not deleted, first {first.get('Key')}: "
                    f"{first.get('Code', 'error')}"
                )


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client; S3-compatible endpoints get checksums only when required."""
    import boto3  # imported here: it costs ~0.15 s, and a `file://` setup never needs it
    from botocore.config import Config

    config = Config(max_pool_connections=64, retries={"max_attempts": 5, "mode": "standard"})
    if endpoint_url:
        # MinIO, R2 and B2 reject the CRC32 headers boto3 >= 1.36 sends by default.
        config = config.merge(
            Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
        )
    return boto3.client("s3", endpoint_url=endpoint_url or None, config=config)
