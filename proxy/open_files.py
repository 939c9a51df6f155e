"""Large deployment files kept open, so a replayed answer's body can leave by sendfile(2).

Writing a body from memory copies it into the socket: for a 150 KB file that copy was the
largest single cost of a replayed answer (16% of the proxy's CPU under load). The kernel
can send a file's pages itself instead, as nginx does (`ReplayingProtocol`). This keeps
descriptors of the large files the proxy replays from storage on this machine (S3 has no
file here: nothing is opened then).

A descriptor keeps a file's disk space even after retention deletes it, so descriptors are
kept only for files the object cache still holds (a replay needs those bytes anyway), and
at most `MAX_OPEN_FILES` of them.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections import OrderedDict

import anyio

from app.storage import Storage, StorageError
from proxy.cache import ObjectCache

SENDFILE_MIN_BYTES = 64 * 1024
"""Smaller bodies go out with their headers in one write: a second system call costs more."""
MAX_OPEN_FILES = 256
"""Descriptors per process; well below the usual limit of 1024 and leaving room for sockets."""


def raise_descriptor_limit() -> int:
    """Raise this process's soft limit on open descriptors to its hard limit, as Go does for
    every program and nginx with `worker_rlimit_nofile`; the new soft limit.

    A connection that was sent a file holds two descriptors (`ReplayingProtocol`'s own copy),
    and up to `MAX_OPEN_FILES` files stay open: under the usual soft limit of 1024 a worker
    would run out at a few hundred connections, though the hard limit is far higher."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard and hard != resource.RLIM_INFINITY:
        with contextlib.suppress(ValueError, OSError):  # a container may refuse: keep `soft`
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class OpenFiles:
    """Descriptors of cached files by storage key, least recently sent closed first."""

    def __init__(self, storage: Storage, cache: ObjectCache, limit: int = MAX_OPEN_FILES) -> None:
        self._storage = storage
        self._cache = cache
        self._limit = limit
        self._open: OrderedDict[str, tuple[int, int]] = OrderedDict()
        """Storage key → (descriptor, size when opened)."""

    def get(self, key: str, size: int) -> int | None:
        """The descriptor of `key`'s file, if it is open and still `size` bytes long (the
        length of the cached bytes it stands for), or None: the body is then written."""
        found = self._open.get(key)
        if found is None or found[1] != size:
            return None
        self._open.move_to_end(key)
        return found[0]

    async def add(self, key: str) -> None:
        """Open `key`'s file if the object cache holds it and storage keeps it on this machine
        (`Storage.open_file`: inside the store, reached through no symlink, a regular file).

        Never raises: without a descriptor the body is written from memory, as before."""
        if key in self._open or key not in self._cache:
            return
        try:
            # Shielded: a cancelled wait would lose the descriptor the thread still opens.
            with anyio.CancelScope(shield=True):
                fd = await self._storage.open_file(key)
        except StorageError:  # also `ObjectNotFound`: deleted since it was read
            return
        if fd is None:
            return
        if key in self._open:  # opened meanwhile by another request
            os.close(fd)
            return
        self._open[key] = (fd, os.fstat(fd).st_size)
        self._prune()

    def _prune(self) -> None:
        gone = [key for key in self._open if key not in self._cache]
        for key in gone:
            os.close(self._open.pop(key)[0])
        while len(self._open) > self._limit:
            os.close(self._open.popitem(last=False)[1][0])

    def close(self) -> None:
        """Close every descriptor (the proxy is stopping)."""
        while self._open:
            os.close(self._open.popitem()[1][0])

    def __len__(self) -> int:
        return len(self._open)
