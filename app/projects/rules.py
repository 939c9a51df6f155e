"""What a project may be: its name and slug, where its code lives, its branch, paths and commands,
its previews' time to live.

Each check takes the raw value a user gave and returns it cleaned, or raises `UserError` with a
code naming the field's problem, so the API and the dashboard's form explain it the same way.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from app import hostnames
from app.errors import ErrorCode, UserError
from app.installations.service import github_web_url
from app.refs import is_ref_name
from app.settings import Runner, Settings
from builder.siteconfig.scalemesh import MAX_TTL_DAYS

MAX_SLUG = 48


# Hostnames the platform itself may want under the root domain.
class Protection(StrEnum):
    """Which of a project's deployments only signed-in viewers who may see the project open."""

    NONE = "none"
    PREVIEWS = "previews"
    """Every deployment but the production one (the default for private repositories)."""
    ALL = "all"


RESERVED_SLUGS = frozenset({"api", "app", "www", "admin", "dashboard", "static", "assets", "mail"})
_DEPLOYMENT_SUFFIX = re.compile(rf"-[0-9a-f]{{{hostnames.SHORT_ID}}}$")
"""How a deployment's own label ends (`app.hostnames.deployment_label`)."""
_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_REPO_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


@dataclass(frozen=True, slots=True)
class RepoSource:
    git_url: str
    github_repository: str | None


def slugify(name: str) -> str:
    """A DNS-label-safe slug: lowercase ASCII letters, digits and single hyphens."""
    return hostnames.slugify(name, limit=MAX_SLUG)


def check_name(raw: str) -> tuple[str, str]:
    name = raw.strip()
    if not name or len(name) > 100:
        raise UserError(ErrorCode.INVALID_NAME, "name must be 1 to 100 characters long.")
    slug = slugify(name)
    if not slug:
        raise UserError(
            ErrorCode.INVALID_NAME,
            f"name {raw!r} needs at least one letter or digit to make a URL from.",
        )
    if "-git-" in slug:
        raise UserError(
            ErrorCode.INVALID_NAME,
            f"the URL name {slug!r} contains '-git-', which is kept for branch addresses "
            "(<project>-git-<branch>); choose a name without it.",
        )
    if _DEPLOYMENT_SUFFIX.search(slug):
        raise UserError(
            ErrorCode.INVALID_NAME,
            f"the URL name {slug!r} ends in a hyphen and {hostnames.SHORT_ID} hexadecimal "
            "characters, which is kept for deployment addresses (<project>-<id>); "
            "choose a name that does not.",
        )
    return name, slug


def parse_repo(raw: str, settings: Settings) -> RepoSource:
    """`owner/name` (a GitHub repository) or a git URL the builder can clone."""
    value = raw.strip()
    if not value:
        raise UserError(
            ErrorCode.INVALID_REPO, "repo is required: owner/name for GitHub, or a git URL."
        )
    if re.match(r"^[\w.-]+@[\w.-]+:", value) or value.startswith("ssh://"):
        raise UserError(
            ErrorCode.INVALID_REPO,
            "SSH URLs are not supported: use the https:// URL, "
            "or owner/name for a GitHub repository.",
        )
    if "://" not in value:
        return _github_repo(value, settings)
    if any(ord(c) < 0x20 or c.isspace() for c in value):
        raise UserError(
            ErrorCode.INVALID_REPO, "the repo URL must not contain spaces or control characters."
        )
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise UserError(ErrorCode.INVALID_REPO, f"repo {value!r} is not a valid URL.") from None
    if parts.scheme == "file":
        return _file_repo(parts.path, parts.netloc, settings)
    if parts.scheme == "http":
        raise UserError(
            ErrorCode.INVALID_REPO, "plain http:// git URLs are not supported: use https://."
        )
    if parts.scheme != "https" or not host:
        raise UserError(
            ErrorCode.INVALID_REPO,
            f"repo {value!r} is not owner/name or a git URL (https:// or file://).",
        )
    if parts.username or parts.password:
        raise UserError(
            ErrorCode.INVALID_REPO,
            "don't put credentials in the repo URL; private GitHub repositories are "
            "cloned with the GitHub App's token.",
        )
    if parts.query or parts.fragment:
        raise UserError(ErrorCode.INVALID_REPO, "the repo URL must not have a ?query or #fragment.")
    github_host = urlsplit(github_web_url(settings)).hostname
    path = parts.path.strip("/").removesuffix(".git")
    if host == github_host and path.count("/") == 1:
        return _github_repo(path, settings)
    if not path:
        raise UserError(ErrorCode.INVALID_REPO, f"repo URL {value!r} has no repository path.")
    return RepoSource(git_url=value, github_repository=None)


def _github_repo(value: str, settings: Settings) -> RepoSource:
    owner, _, name = value.partition("/")
    name = name.removesuffix(".git")
    if not _OWNER.match(owner) or not _REPO_NAME.match(name) or name in (".", ".."):
        raise UserError(
            ErrorCode.INVALID_REPO,
            f"repo {value!r} is not owner/name or a git URL (https:// or file://).",
        )
    full_name = f"{owner}/{name}"
    return RepoSource(
        git_url=f"{github_web_url(settings)}/{full_name}.git", github_repository=full_name
    )


def _file_repo(path: str, host: str, settings: Settings) -> RepoSource:
    if settings.runner is not Runner.LOCAL:
        raise UserError(
            ErrorCode.INVALID_REPO,
            "file:// repositories only work with the local runner; use an https:// URL.",
        )
    if host not in ("", "localhost") or not path.startswith("/"):
        raise UserError(
            ErrorCode.INVALID_REPO, "a file:// URL needs an absolute path: file:///path/to/repo."
        )
    try:
        found = Path(path).exists()
    except OSError:  # e.g. a name longer than the filesystem allows
        found = False
    if not found:
        raise UserError(ErrorCode.INVALID_REPO, f"there is no git repository at {path}.")
    return RepoSource(git_url=f"file://{path}", github_repository=None)


def check_branch(raw: str) -> str:
    branch = raw.strip().removeprefix("refs/heads/")
    if not is_ref_name(branch):
        raise UserError(
            ErrorCode.INVALID_BRANCH, f"production_branch {raw!r} is not a valid git branch name."
        )
    return branch


def check_relative_dir(field: str, raw: str | None) -> str | None:
    if raw is None:
        return None
    value = raw.strip()
    if value in ("", ".", "./"):
        return None
    path = PurePosixPath(value)
    if (
        path.is_absolute()
        or ".." in path.parts
        or "\\" in value
        or "\x00" in value
        or len(value) > 255
    ):
        raise UserError(
            ErrorCode.INVALID_PATH,
            f"{field} must be a path inside the repository, like 'site' or 'apps/web'.",
        )
    return str(path)


def check_command(field: str, raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if len(value) > 1000 or "\x00" in value or "\n" in value:
        raise UserError(
            ErrorCode.INVALID_COMMAND, f"{field} must be one line of at most 1000 characters."
        )
    try:
        shlex.split(value)
    except ValueError as exc:
        raise UserError(
            ErrorCode.INVALID_COMMAND, f"{field} cannot be split into arguments: {exc}."
        ) from None
    return value


TTL_REFUSAL = (
    f"The preview time to live must be a whole number of days from 1 to {MAX_TTL_DAYS}; "
    "leave it empty to follow the repository's previews.ttlDays."
)


def check_preview_ttl_days(value: int | None) -> int | None:
    """Days a preview may go without a push before it is torn down; the bounds of
    `previews.ttlDays`. None: the repository's `previews.ttlDays`, else never."""
    if value is not None and not 1 <= value <= MAX_TTL_DAYS:
        raise UserError(ErrorCode.INVALID_TTL, TTL_REFUSAL)
    return value


def parse_preview_ttl_days(raw: str) -> int | None:
    """`check_preview_ttl_days` of a form's text: empty is None."""
    text = raw.strip()
    if not text:
        return None
    if not re.fullmatch(r"[0-9]{1,6}", text):
        raise UserError(ErrorCode.INVALID_TTL, TTL_REFUSAL)
    return check_preview_ttl_days(int(text))
