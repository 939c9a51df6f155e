"""Reading a config file out of the checkout: the repository's own regular file, small, UTF-8.

The checkout is hostile input read by the builder's user (root on ECS) before any project
command runs: a `scalemesh.json -> /etc/passwd` symlink is refused, a 50 MB file is refused
after 1 MB is read, and no error quotes what the file holds.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from builder.siteconfig.nodes import ConfigError

MAX_BYTES = 1 << 20
"""A config file larger than this is refused: it is read into memory whole."""
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def exists(repo: Path, relative: str) -> bool:
    """Whether `relative` names a regular file of the repository (a symlink out is an error)."""
    return _real(repo, relative) is not None


def read_text(repo: Path, relative: str) -> str | None:
    """The text of the file at `relative` in `repo` (resolved), or None when there is none."""
    real = _real(repo, relative)
    if real is None:
        return None
    try:
        # O_NOFOLLOW: `real` has no symlink left in it, and none is let in now.
        descriptor = os.open(real, _READ)
    except OSError as exc:
        raise ConfigError(relative, None, f"cannot be read ({exc.strerror})") from None
    with open(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):  # pragma: no cover - swapped
            # Only if the entry changed between the check and the open; nothing of the
            # build runs yet, so only a test could do it.
            return None
        data = stream.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ConfigError(relative, None, f"is larger than {MAX_BYTES >> 20} MB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(relative, line, f"is not UTF-8 text (byte {exc.start})") from None
    return text.removeprefix("\ufeff")


def _real(repo: Path, relative: str) -> Path | None:
    """The file's path with its symlinks resolved, if it is a regular file inside `repo`."""
    path = repo / relative
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(repo):
        raise ConfigError(
            relative,
            None,
            "is a symlink to outside the repository; only the repository's own files are read",
        )
    return real if real.is_file() else None
