"""Reading a config file out of the checkout: the repository's own regular file, small, UTF-8.

The checkout is hostile input read by the builder's user (root on ECS) before any project
command runs: `builder.repo_files` refuses a `scalemesh.json -> /etc/passwd` symlink, and a
50 MB file after 1 MB is read; here its refusals become `ConfigError`s naming the file.
"""

from __future__ import annotations

from pathlib import Path

from builder import repo_files
from builder.repo_files import RepoFileError
from builder.siteconfig.nodes import ConfigError

MAX_BYTES = 1 << 20
"""A config file larger than this is refused: it is read into memory whole."""


def exists(repo: Path, relative: str) -> bool:
    """Whether `relative` names a regular file of the repository (a symlink out is an error)."""
    try:
        return repo_files.regular_file(repo, repo / relative) is not None
    except RepoFileError as exc:
        raise ConfigError(relative, exc.line, exc.detail) from None


def read_text(repo: Path, relative: str) -> str | None:
    """The text of the file at `relative` in `repo` (resolved), or None when there is none."""
    try:
        text = repo_files.read_text(repo, repo / relative, MAX_BYTES)
    except RepoFileError as exc:
        raise ConfigError(relative, exc.line, exc.detail) from None
    return None if text is None else text.removeprefix("\ufeff")
