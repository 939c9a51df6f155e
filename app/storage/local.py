"""`LocalStorage`: object storage in a directory on this machine (`file://`)."""

from __future__ import annotations

import builtins
import contextlib
import functools
import os
import secrets
import stat
import tempfile
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import anyio.to_thread

from app.storage import (
    STREAM_CHUNK,
    TEMP_MARK,
    ObjectNotFound,
    StorageError,
    check_key,
    check_prefix,
)

_MISSING = (FileNotFoundError, NotADirectoryError)
"""What looking up a key that names no file raises."""


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
                with tempfile.NamedTemporaryFile(dir=self.root, prefix=TEMP_MARK + "health-"):
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
            temp = path.with_name(f"{TEMP_MARK}{secrets.token_hex(8)}")
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

    @functools.cached_property
    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def _open(self, path: Path, key: str, doing: str = "read") -> int | None:
        """A read-only descriptor of `key`'s file (at `path`, its key checked), or None when the
        store holds no such object; run in a worker thread.

        Only the store's own files count: `put` never makes a symlink, so one met on the way
        (in the key's directories or as its file) was put there by someone else and may lead
        out of the root, and is not followed: the object is missing. So is a directory (a
        prefix, not an object: S3 would say NoSuchKey too).
        """
        with _os_errors(f"cannot {doing} {key}"):
            try:
                if os.path.realpath(path, strict=True) != os.path.join(self._real_root, key):
                    return None
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except _MISSING:
                return None
            if stat.S_ISREG(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
            return None

    async def _found(self, key: str, doing: str = "read") -> int:
        fd = await anyio.to_thread.run_sync(self._open, self._path(key), key, doing)
        if fd is None:
            # Raised here rather than in the worker thread: a missing key is routine (the
            # log archive probe), and on Python 3.11 an exception that crossed from a thread
            # stops line tracing (coverage, debuggers) in an async generator awaiting us.
            raise ObjectNotFound(key)
        return fd

    async def get(self, key: str) -> bytes:
        fd = await self._found(key)

        def read() -> bytes:
            with _os_errors(f"cannot read {key}"), open(fd, "rb") as handle:
                return handle.read()

        return await anyio.to_thread.run_sync(read)

    async def exists(self, key: str) -> bool:
        fd = await anyio.to_thread.run_sync(self._open, self._path(key), key, "look up")
        if fd is not None:
            os.close(fd)
        return fd is not None

    async def size(self, key: str) -> int:
        fd = await self._found(key, "look up")
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    async def stream(
        self, key: str, start: int = 0, stop: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        def read_at(fd: int, want: int, position: int) -> bytes:
            with _os_errors(f"cannot read {key}"):
                return os.pread(fd, want, position)

        fd = await self._found(key)
        try:
            position = start
            while stop is None or position < stop:
                want = STREAM_CHUNK if stop is None else min(STREAM_CHUNK, stop - position)
                # pread: no shared file position, and exactly the bytes asked for are read.
                chunk = await anyio.to_thread.run_sync(read_at, fd, want, position)
                if not chunk:
                    return  # the end of the file
                position += len(chunk)
                yield chunk
        finally:
            os.close(fd)

    async def path_of(self, key: str) -> Path:
        fd = await self._found(key, "look up")
        os.close(fd)
        # The path it was found at is the real one: no symlink on the way to follow.
        return Path(self._real_root, key)

    async def open_file(self, key: str) -> int:
        return await self._found(key, "open")

    async def list(
        self, prefix: str, *, start_after: str = "", limit: int | None = None
    ) -> list[str]:
        keys = await anyio.to_thread.run_sync(self._list, check_prefix(prefix))
        after = [key for key in keys if key > start_after]
        return after if limit is None else after[:limit]

    def _list(self, prefix: str) -> builtins.list[str]:
        # Walk only the deepest directory the prefix names; the rest of the tree can't match.
        directory, _, _ = prefix.rpartition("/")
        base = self.root.joinpath(*directory.split("/")) if directory else self.root
        keys: builtins.list[str] = []
        for current, _dirs, files in os.walk(base):
            relative = Path(current).relative_to(self.root).as_posix()
            for name in files:
                if name.startswith(TEMP_MARK):
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
