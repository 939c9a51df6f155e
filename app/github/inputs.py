"""Refuse bad input before GitHub sees it: repository names, shas, states, long descriptions."""

from __future__ import annotations

import re
from typing import TypeVar
from urllib.parse import quote

from app.github.api import GitHubError

DESCRIPTION_LIMIT = 140
"""GitHub refuses a commit or deployment status whose description is longer (422)."""

_S = TypeVar("_S", bound=str)

_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
SHA = re.compile(r"[0-9a-fA-F]{7,64}")


def split_repository(repository: str) -> tuple[str, str]:
    # Both parts go into URL paths: refuse anything that could step out of /repos/{owner}/{name}.
    owner, _, name = repository.partition("/")
    if not _OWNER.fullmatch(owner) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise GitHubError(f"{repository!r} is not a repository name like owner/name")
    return owner, name


def ref_in_path(ref: str) -> str:
    """A branch, tag or sha as a URL path's tail (githubkit puts it in as it is). Git allows `#`
    and `%` in a name: sent bare, `#` would cut the path and `%2e%2e` would be read as `..`.
    Its `/`s stay: GitHub takes `feature/x` as one branch."""
    return quote(ref, safe="/")


def one_of(value: str, allowed: tuple[_S, ...], what: str) -> _S:
    for candidate in allowed:
        if value == candidate:
            return candidate
    raise GitHubError(f"{value!r} is not a {what} GitHub knows ({', '.join(allowed)})")


def shorten(description: str) -> str:
    if len(description) <= DESCRIPTION_LIMIT:
        return description
    return description[: DESCRIPTION_LIMIT - 1] + "…"
