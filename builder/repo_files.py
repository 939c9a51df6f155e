"""Reading the checkout's own files before any project command: never through a symlink out of
the repository, regular files only, capped.

Detection, the config file and the toolchain's version files are read by the builder's user
(root on ECS) in a checkout that may hold symlinks: one that leaves the repository
(`package.json -> /data/secret_key`) is refused, whether it would be read or only looked for,
and no error quotes what a file holds.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from builder.errors import BuildError

OUTSIDE = "is a symlink to outside the repository; only the repository's own files are read"
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class RepoFileError(BuildError):
    """A file of the checkout is not read: `detail` says why, after its name."""

    def __init__(self, name: str, detail: str, line: int | None = None) -> None:
        super().__init__(f"{name} {detail}")
        self.name = name
        self.detail = detail
        self.line = line
        """The line of what is wrong, when it is one (a byte that is not UTF-8)."""


def label(repo: Path, directory: Path) -> str:
    """A directory of the checkout as a message names it: `apps/web/`, the repository root."""
    relative = directory.relative_to(repo).as_posix()
    return "the repository root" if relative == "." else f"{relative}/"


def resolved(repo: Path, path: Path) -> Path:
    """`path` with its symlinks resolved; it must stay in `repo` (itself resolved)."""
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(repo):
        raise RepoFileError(path.relative_to(repo).as_posix(), OUTSIDE)
    return real


def regular_file(repo: Path, path: Path) -> Path | None:
    """`path` resolved (`resolved`), if that is a regular file; None if there is none."""
    real = resolved(repo, path)
    return real if real.is_file() else None


def head(real: Path, size: int) -> bytes:
    """Up to `size` bytes of the file at `real` (a path from `regular_file`)."""
    # O_NOFOLLOW: `real` has no symlink left in it, and none is let in now.
    with open(os.open(real, _READ), "rb") as stream:
        return stream.read(size)


def read_bytes(repo: Path, path: Path, limit: int) -> bytes | None:
    """The regular file at `path`, of at most `limit` bytes; None when there is none."""
    name = path.relative_to(repo).as_posix()
    real = regular_file(repo, path)
    if real is None:
        return None
    try:
        descriptor = os.open(real, _READ)  # O_NOFOLLOW, as in `head`
    except OSError as exc:
        raise RepoFileError(name, f"cannot be read ({exc.strerror})") from None
    with open(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):  # pragma: no cover - swapped
            # Only if the entry changed between the check and the open; nothing of the
            # build runs yet, so only a test could do it.
            return None
        data = stream.read(limit + 1)
    if len(data) > limit:
        amount = f"{limit >> 20} MB" if limit >= 1 << 20 else f"{limit >> 10} kB"
        raise RepoFileError(name, f"is larger than {amount}")
    return data


def read_text(repo: Path, path: Path, limit: int) -> str | None:
    """`read_bytes`, as UTF-8 text."""
    data = read_bytes(repo, path, limit)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        name = path.relative_to(repo).as_posix()
        raise RepoFileError(name, f"is not UTF-8 text (byte {exc.start})", line) from None
