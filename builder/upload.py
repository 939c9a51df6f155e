"""Upload a build's output directory to storage, precompressed, with the manifest written last."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import boto3
import brotli
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from builder import content
from builder.errors import BuildError
from builder.spec import MANIFEST, SpecError, StorageCredentials

CONCURRENCY = 32
"""Uploads in flight at once."""
COMPRESS_MAX_BYTES = 64 << 20
"""Larger files are sent as they are: compressing them would hold them in memory whole."""
BROTLI_BEST_MAX_BYTES = 1 << 20
BROTLI_BEST_BUDGET = 4 << 20
"""Brotli's best quality (11) runs near 0.7 MB/s a core on real JS; quality 5 runs near 50 MB/s
for files ~15% larger. So 11 goes to files up to `BROTLI_BEST_MAX_BYTES`, smallest first, until
`BROTLI_BEST_BUDGET` bytes have had it (a typical app's whole JS and CSS); the rest get 5, and a
big docs site cannot stretch its build by minutes."""
BROTLI_FAST = 5
BROTLI_BEST = 11
_READ_CHUNK = 1 << 20
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))


class StorageError(RuntimeError):
    """The storage refused or failed an upload (a platform problem, not the user's)."""


@dataclass(frozen=True, slots=True)
class Headers:
    content_type: str
    cache_control: str
    content_encoding: str | None = None


class Pending(Protocol):
    def result(self) -> object:
        """Wait for the upload; raise `StorageError` if it failed."""

    def cancel(self) -> object: ...


class Storage(Protocol):
    def put(self, key: str, source: Path, headers: Headers) -> Pending:
        """Start uploading `source` to `key` (relative to the storage's own prefix)."""

    def close(self, *, cancel: bool = False) -> None:
        """Wait for (or with `cancel`, abandon) what is in flight and release connections."""


class LocalStorage:
    """A directory: each key becomes a file, written to a temporary name and renamed into place.

    Headers are not stored; the proxy takes them from the manifest.
    """

    def __init__(self, root: Path, *, concurrency: int = CONCURRENCY) -> None:
        self._root = root
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="local-upload")

    def put(self, key: str, source: Path, headers: Headers) -> Pending:
        return self._pool.submit(self._copy, key, source)

    def close(self, *, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)

    def get(self, key: str, target: Path) -> bool:
        """Copy the file at `key` to `target`; False when there is none. A hard link where both
        are on one file system: an object is never written in place (`put` renames a new file
        over it), so the link stays the copy it was."""
        source = self._root / key
        with contextlib.suppress(OSError):  # another file system, or links not allowed: copied
            os.link(source, target)
            return True
        try:
            shutil.copyfile(source, target)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(f"reading {key} from {self._root} failed: {exc}") from exc
        return True

    def _copy(self, key: str, source: Path) -> None:
        target = self._root / key
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, temporary)
            os.replace(temporary, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise StorageError(f"writing {key} to {self._root} failed: {exc}") from exc


class _S3Upload:
    def __init__(self, future: Any, key: str) -> None:
        self._future = future
        self._key = key

    def result(self) -> object:
        try:
            return self._future.result()
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            raise StorageError(f"uploading {self._key} failed: {exc}") from exc

    def cancel(self) -> object:
        return self._future.cancel()


class S3Storage:
    """A bucket (and key prefix), written through one client and one transfer manager."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        credentials: StorageCredentials | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self._bucket = bucket
        self._prefix = prefix
        options: dict[str, Any] = {
            "max_pool_connections": concurrency + 8,
            "retries": {"max_attempts": 5, "mode": "standard"},
        }
        if endpoint_url:
            # S3-compatible stores (MinIO, R2, B2) reject the CRC32 headers boto3 sends by default.
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        # Given credentials (ECS: scoped to this deployment's prefix) or the process's own.
        session = (
            boto3.session.Session()
            if credentials is None
            else boto3.session.Session(
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
                aws_session_token=credentials.session_token,
            )
        )
        self._client = session.client("s3", endpoint_url=endpoint_url, config=Config(**options))
        self._manager = create_transfer_manager(
            self._client, TransferConfig(max_concurrency=concurrency)
        )

    def put(self, key: str, source: Path, headers: Headers) -> Pending:
        extra_args = {"ContentType": headers.content_type, "CacheControl": headers.cache_control}
        if headers.content_encoding:
            extra_args["ContentEncoding"] = headers.content_encoding
        full_key = self._prefix + key
        future = self._manager.upload(str(source), self._bucket, full_key, extra_args=extra_args)
        return _S3Upload(future, full_key)

    def get(self, key: str, target: Path) -> bool:
        """Download `key` to `target` in parts; False when there is none (or it may not be
        read: without s3:ListBucket, S3 answers 403 for a missing key)."""
        full_key = self._prefix + key
        try:
            self._manager.download(self._bucket, full_key, str(target)).result()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "403", "NoSuchKey"):
                return False
            raise StorageError(f"downloading {full_key} failed: {exc}") from exc
        except (BotoCoreError, Boto3Error) as exc:
            raise StorageError(f"downloading {full_key} failed: {exc}") from exc
        return True

    def close(self, *, cancel: bool = False) -> None:
        self._manager.shutdown(cancel=cancel)
        self._client.close()


def open_storage(
    url: str,
    *,
    endpoint_url: str | None = None,
    credentials: StorageCredentials | None = None,
) -> Storage:
    """The storage `url` names: `file:///dir` or `s3://bucket[/prefix]`."""
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path:
        return LocalStorage(Path(parts.path))
    if parts.scheme == "s3" and parts.netloc:
        prefix = parts.path.strip("/")
        return S3Storage(
            parts.netloc,
            f"{prefix}/" if prefix else "",
            endpoint_url=endpoint_url,
            credentials=credentials,
        )
    raise SpecError(f"storage URL must be file:///dir or s3://bucket[/prefix], not {url!r}")


@dataclass(frozen=True, slots=True)
class UploadedFile:
    size: int
    sha256: str
    content_type: str
    cache_control: str
    encodings: tuple[str, ...] = ()
    br_size: int | None = None
    """The `.br` sibling's size; None without one (the raw size is what is sent then)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "sha256": self.sha256,
            "content_type": self.content_type,
            "cache_control": self.cache_control,
            "encodings": list(self.encodings),
            # Always written, so a reader tells a new manifest from an old one (no sizes).
            "br_size": self.size if self.br_size is None else self.br_size,
        }


@dataclass(slots=True)
class Uploaded:
    files: dict[str, UploadedFile] = field(default_factory=dict)
    """By path relative to the output directory."""
    siblings: int = 0
    """Compressed `.br`/`.gz` copies sent besides the files."""
    bytes: int = 0


def upload_output(
    files: Iterable[tuple[str, Path]],
    storage: Storage,
    prefix: str,
    scratch: Path,
    *,
    compress: bool = True,
    workers: int | None = None,
) -> Uploaded:
    """Hash, compress and upload `files` under `prefix`; return what was sent.

    `compress=False` sends no `.br`/`.gz` siblings. Raises `StorageError` on the first failed
    upload, after cancelling the rest.
    """
    files = list(files)
    names = {path for path, _ in files}
    qualities = _brotli_qualities(files) if compress else {}
    uploaded = Uploaded()
    pending: list[Pending] = []
    with ThreadPoolExecutor(workers or os.cpu_count() or 2, thread_name_prefix="compress") as pool:
        prepared: list[Future[_Prepared]] = [
            pool.submit(_prepare, path, source, scratch / str(index), names, qualities.get(path))
            for index, (path, source) in enumerate(files)
        ]
        try:
            # Upload each file as soon as it is hashed and compressed.
            for future in as_completed(prepared):
                item = future.result()
                uploaded.files[item.path] = item.record
                uploaded.bytes += item.record.size
                pending.extend(_send(storage, prefix, item))
                uploaded.siblings += len(item.siblings)
            for upload in pending:
                upload.result()
        except BaseException:
            for cancellable in [*prepared, *pending]:
                cancellable.cancel()
            raise
    uploaded.files = dict(sorted(uploaded.files.items()))
    return uploaded


def write_manifest(storage: Storage, key: str, manifest: Mapping[str, Any], scratch: Path) -> None:
    """Write the manifest at `key` and wait for it: the deployment exists once this returns."""
    path = scratch / "manifest.json"
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    path.write_text(text + "\n", encoding="utf-8")
    headers = Headers(content.content_type(MANIFEST), content.REVALIDATE)
    storage.put(key, path, headers).result()


def missing_output(label: str, *, empty: bool) -> BuildError:
    state = "is empty" if empty else "was not found"
    return BuildError(f"output directory {label} {state} after the build (set output_directory)")


@dataclass(frozen=True, slots=True)
class _Prepared:
    path: str
    source: Path
    record: UploadedFile
    siblings: tuple[tuple[str, str, Path], ...]
    """(Content-Encoding, key suffix, compressed file)."""


def _send(storage: Storage, prefix: str, item: _Prepared) -> list[Pending]:
    headers = Headers(item.record.content_type, item.record.cache_control)
    sent = [storage.put(prefix + item.path, item.source, headers)]
    for encoding, suffix, sibling in item.siblings:
        compressed = Headers(headers.content_type, headers.cache_control, encoding)
        sent.append(storage.put(prefix + item.path + suffix, sibling, compressed))
    return sent


def _brotli_qualities(files: list[tuple[str, Path]]) -> dict[str, int]:
    """The brotli quality of each file worth compressing (see `BROTLI_BEST_BUDGET`)."""
    sizes = {
        path: source.stat().st_size
        for path, source in files
        if content.is_compressible(content.content_type(path))
    }
    qualities: dict[str, int] = {}
    spent = 0
    for path, size in sorted(sizes.items(), key=lambda item: (item[1], item[0])):
        if not content.COMPRESS_MIN_BYTES < size <= COMPRESS_MAX_BYTES:
            continue
        best = size <= BROTLI_BEST_MAX_BYTES and spent + size <= BROTLI_BEST_BUDGET
        spent += size if best else 0
        qualities[path] = BROTLI_BEST if best else BROTLI_FAST
    return qualities


def _prepare(
    path: str, source: Path, scratch: Path, names: set[str], quality: int | None
) -> _Prepared:
    """Hash the file and, with a brotli `quality`, compress it (`names`: every path published)."""
    digest = hashlib.sha256()
    siblings: list[tuple[str, str, Path]] = []
    br_size = None
    if quality is not None:
        data = source.read_bytes()
        size = len(data)
        digest.update(data)
        compressors: dict[str, Callable[[bytes], bytes]] = {
            "br": lambda raw: brotli.compress(raw, quality=quality),
            "gzip": lambda raw: gzip.compress(raw, compresslevel=9, mtime=0),
        }
        for encoding, suffix in ENCODINGS:
            # The site's own `app.js.gz` wins over ours.
            if path + suffix in names:
                continue
            packed = compressors[encoding](data)
            if len(packed) < size:
                target = scratch.with_name(scratch.name + suffix)
                target.write_bytes(packed)
                br_size = len(packed) if encoding == "br" else br_size
                siblings.append((encoding, suffix, target))
    else:
        size = 0
        with source.open("rb") as stream:
            while chunk := stream.read(_READ_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    record = UploadedFile(
        size=size,
        sha256=digest.hexdigest(),
        content_type=content.content_type(path),
        cache_control=content.cache_control(path),
        encodings=tuple(encoding for encoding, _, _ in siblings),
        br_size=br_size,
    )
    return _Prepared(path, source, record, tuple(siblings))
