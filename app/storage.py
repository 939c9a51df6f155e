"""Object storage for deployment outputs and archived logs: a directory or an S3 bucket.

Both implementations satisfy `Storage`; vendor errors are translated here and never escape.
Keys are `/`-separated relative paths (`__outputs/1/abc/index.html`); both stores check them the
same way, so a key that works on a laptop works on S3 and the other way round.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError

from app.settings import StorageSettings

T = TypeVar("T")

DELETE_BATCH = 1000
"""S3 `DeleteObjects` takes at most this many keys per request."""

_TEMP_MARK = ".~scalemesh-"
"""Names starting with this are `LocalStorage`'s files in flight, never objects."""

_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
"""S3 error codes meaning "no such object" (`HeadObject` has no body, so only "404")."""


class StorageError(RuntimeError):
    """The store could not be reached or refused the operation."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """No object has that key."""


# Runtime-checkable: Litestar checks an injected dependency with isinstance() against its
# annotated type, and a plain Protocol refuses isinstance().
@runtime_checkable
class Storage(Protocol):
    """A flat key → bytes store. Keys are `/`-separated relative paths, never starting with `/`.

    A malformed key or prefix raises `ValueError` before the store is touched.
    """

    async def check(self) -> None:
        """Raise `StorageError` unless the store can be read and written."""

    async def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        cache_control: str | None = None,
        content_encoding: str | None = None,
    ) -> None:
        """Store `data` under `key`, replacing what was there."""

    async def get(self, key: str) -> bytes:
        """The object's bytes; `ObjectNotFound` when there is none."""

    async def exists(self, key: str) -> bool: ...

    async def list(self, prefix: str) -> list[str]:
        """Every key starting with `prefix` (`""` for all), sorted."""

    async def delete(self, *keys: str) -> None:
        """Delete the objects under `keys` (in batches where the store allows); a key with no
        object is not an error."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key under `prefix` (which must end with `/`); return how many."""


def check_key(key: str) -> str:
    """Return `key` if it is a clean relative path, else raise `ValueError`.

    Refused: a leading `/`, empty, `.` or `..` segments, backslashes and NUL. On disk these
    would escape the root or alias another key; on S3 they make keys no local store can hold.
    """
    if not key:
        raise ValueError("a storage key must not be empty")
    if "\\" in key or "\0" in key:
        raise ValueError(f"a storage key must not contain a backslash or NUL: {key!r}")
    if key.startswith("/"):
        raise ValueError(f"a storage key must be relative, not {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"a storage key must not have empty, . or .. segments: {key!r}")
        if segment.startswith(_TEMP_MARK):
            raise ValueError(f"a storage key must not use the reserved name {_TEMP_MARK!r}")
    return key


def check_prefix(prefix: str) -> str:
    """Return `prefix` if it is `""` or a clean key, optionally ending with `/`."""
    if prefix:
        check_key(prefix.removesuffix("/"))
    return prefix


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    """Turn the file system's `OSError`s into `StorageError`s saying what we were doing."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"{what}: {exc.strerror or exc}") from None


class LocalStorage:
    """A directory on this machine (`file://`).

    Fine for one machine (`scalemesh dev`, a single server); replicas on other machines cannot
    see it, so use S3 there. Only the bytes are kept: content type and cache headers are
    ignored, and the proxy takes them from the deployment's manifest instead.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    async def check(self) -> None:
        def probe() -> None:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=self.root, prefix=_TEMP_MARK + "health-"):
                    pass
            except OSError as exc:
                raise StorageError(f"{self.root} is not writable: {exc.strerror}") from None

        await anyio.to_thread.run_sync(probe)

    async def put(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        cache_control: str | None = None,
        content_encoding: str | None = None,
    ) -> None:
        path = self._path(key)

        def write() -> None:
            # Write aside, then rename: a reader (the proxy) sees the old bytes or the new,
            # never a half-written file, and a crash leaves only a temp file behind.
            temp = path.with_name(f"{_TEMP_MARK}{secrets.token_hex(8)}")
            with _os_errors(f"cannot write {key}"):
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with temp.open("xb") as handle:
                        handle.write(data)
                        handle.flush()
                        os.fsync(handle.fileno())
                    temp.replace(path)
                except BaseException:
                    temp.unlink(missing_ok=True)
                    raise

        await anyio.to_thread.run_sync(write)

    async def get(self, key: str) -> bytes:
        path = self._path(key)

        def read() -> bytes | None:
            with _os_errors(f"cannot read {key}"):
                try:
                    return path.read_bytes()
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    # A directory is a prefix, not an object: S3 would say NoSuchKey too.
                    return None

        data = await anyio.to_thread.run_sync(read)
        if data is None:
            # Raised here rather than in the worker thread: a missing key is routine (the
            # log archive probe), and on Python 3.11 an exception that crossed from a thread
            # stops line tracing (coverage, debuggers) in an async generator awaiting us.
            raise ObjectNotFound(key)
        return data

    async def exists(self, key: str) -> bool:
        path = self._path(key)

        def exists() -> bool:
            with _os_errors(f"cannot look up {key}"):
                return path.is_file()

        return await anyio.to_thread.run_sync(exists)

    async def list(self, prefix: str) -> list[str]:
        return await anyio.to_thread.run_sync(self._list, check_prefix(prefix))

    def _list(self, prefix: str) -> builtins.list[str]:
        # Walk only the deepest directory the prefix names; the rest of the tree can't match.
        directory, _, _ = prefix.rpartition("/")
        base = self.root.joinpath(*directory.split("/")) if directory else self.root
        keys: builtins.list[str] = []
        for current, _dirs, files in os.walk(base):
            relative = Path(current).relative_to(self.root).as_posix()
            for name in files:
                if name.startswith(_TEMP_MARK):
                    continue
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    async def delete(self, *keys: str) -> None:
        paths = [(key, self._path(key)) for key in keys]

        def delete() -> None:
            for key, path in paths:
                with _os_errors(f"cannot delete {key}"):
                    path.unlink(missing_ok=True)

        await anyio.to_thread.run_sync(delete)

    async def delete_prefix(self, prefix: str) -> int:
        if not prefix.endswith("/"):
            raise ValueError(f"delete_prefix needs a prefix ending with '/', not {prefix!r}")
        check_prefix(prefix)

        def delete() -> int:
            keys = self._list(prefix)
            with _os_errors(f"cannot delete under {prefix}"):
                for key in keys:
                    self._path(key).unlink(missing_ok=True)
            self._prune(self._path(prefix.removesuffix("/")))
            return len(keys)

        return await anyio.to_thread.run_sync(delete)

    def _prune(self, directory: Path) -> None:
        """Remove the now-empty directories left under (and including) `directory`."""
        for current, _dirs, _files in os.walk(directory, topdown=False):
            # Not empty (a leftover temp file, a concurrent put): keep it.
            with contextlib.suppress(OSError):
                Path(current).rmdir()


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

    async def list(self, prefix: str) -> list[str]:
        full_prefix = self.prefix + check_prefix(prefix)
        keys = await self._call(self._where(prefix), lambda: self._list(full_prefix))
        # Keys go back out relative to our prefix: callers never see it.
        return sorted(key.removeprefix(self.prefix) for key in keys)

    def _list(self, full_prefix: str) -> builtins.list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full_prefix
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


def storage_from_settings(settings: StorageSettings) -> Storage:
    if settings.scheme == "file":
        return LocalStorage(settings.local_root)
    # boto3 reads credentials and region from the standard AWS_* variables itself.
    return S3Storage(s3_client(settings.endpoint_url), settings.bucket, settings.prefix)
