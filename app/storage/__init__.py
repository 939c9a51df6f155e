"""Object storage for deployment outputs and archived logs: the `Storage` interface and its keys.

Two implementations satisfy `Storage`: `LocalStorage` (a directory, `app.storage.local`) and
`S3Storage` (a bucket, `app.storage.s3`); `app.storage.choice` picks one from settings. Vendor
errors are translated in them and never escape. Keys are `/`-separated relative paths
(`__outputs/1/abc/index.html`); both stores check them the same way, so a key that works on a
laptop works on S3 and the other way round.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Protocol, runtime_checkable

TEMP_MARK = ".~scalemesh-"
"""Names starting with this are `LocalStorage`'s files in flight, never objects."""

STREAM_CHUNK = 256 * 1024
"""Bytes per piece `Storage.stream` yields: large enough for few thread hops, small enough that
many clients streaming at once hold little memory."""


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

    async def size(self, key: str) -> int:
        """The object's size in bytes, without reading it; `ObjectNotFound` when there is none."""

    def stream(
        self, key: str, start: int = 0, stop: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The object's bytes `[start, stop)` (to its end without `stop`, or when it is shorter),
        in pieces of at most `STREAM_CHUNK`, reading only those bytes from the store.

        `ObjectNotFound` is raised when the first piece is asked for. Close the iterator
        (`contextlib.aclosing`) when stopping early, so the file or connection is released.
        """

    async def path_of(self, key: str) -> Path | None:
        """The file on this machine holding the object, for a server to send by itself
        (`sendfile`, ASGI's pathsend): its real path, inside the store, reached through no
        symlink; `ObjectNotFound` when there is none. None when the store keeps objects
        elsewhere (nothing is asked of it then)."""

    async def open_file(self, key: str) -> int | None:
        """A read-only descriptor of the file `path_of` names, opened through the same checks,
        for sending it with `sendfile`; the caller closes it. `ObjectNotFound` when there is
        none; None when the store keeps objects elsewhere (nothing is asked of it then)."""

    async def list(
        self, prefix: str, *, start_after: str = "", limit: int | None = None
    ) -> list[str]:
        """Every key starting with `prefix` (`""` for all), sorted; only those after
        `start_after`, and the first `limit` of them when given (a page of a long listing)."""

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
        if segment.startswith(TEMP_MARK):
            raise ValueError(f"a storage key must not use the reserved name {TEMP_MARK!r}")
    return key


def check_prefix(prefix: str) -> str:
    """Return `prefix` if it is `""` or a clean key, optionally ending with `/`."""
    if prefix:
        check_key(prefix.removesuffix("/"))
    return prefix
