"""Choose the project to deploy from the git repository in the current directory."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from app.client import ClientError
from app.client.answers import ProjectAnswer

GIT_TIMEOUT_S = 10.0


def repo_key(url: str, cwd: Path) -> str:
    """A git URL in a form two spellings of one repository share (`host/owner/name`, a path)."""
    value = url.strip()
    if value.startswith("file://"):
        return os.path.realpath(urlsplit(value).path)
    if "://" in value:
        parts = urlsplit(value)
        return f"{parts.hostname}{parts.path}".removesuffix("/").removesuffix(".git").lower()
    head, colon, tail = value.partition(":")
    if colon and "/" not in head:  # scp-like: git@github.com:owner/name.git
        host = head.rpartition("@")[2]
        return f"{host}/{tail.strip('/')}".removesuffix(".git").lower()
    return os.path.realpath(cwd / value)


def local_repos(cwd: Path) -> set[str]:
    """The repository in `cwd`, as keys: its remotes' URLs and its own path."""
    remotes = _git(cwd, "config", "--get-regexp", r"^remote\..*\.url$")
    urls = [line.partition(" ")[2] for line in remotes]
    urls += _git(cwd, "rev-parse", "--show-toplevel")
    return {repo_key(url, cwd) for url in urls}


def _git(cwd: Path, *args: str) -> list[str]:
    """The lines git prints, or none when it fails (no repository here, no git at all)."""
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv
            ["git", *args],  # noqa: S607 - the user's git, as their shell would find it
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return done.stdout.splitlines() if done.returncode == 0 else []


def choose_project(
    projects: Sequence[ProjectAnswer],
    here: set[str],
    cwd: Path,
    naming: str = "scalemesh deploy PROJECT",
) -> str:
    """The project building the repository in `cwd`, else the only one; `naming` tells how a
    command is given one instead."""
    matches = [p.slug for p in projects if repo_key(p.git_url, cwd) in here]
    if len(matches) == 1:
        return str(matches[0])
    if matches:
        raise ClientError(
            f"projects {', '.join(matches)} all build this repository; name one: {naming}"
        )
    if len(projects) == 1:
        return projects[0].slug
    if not projects:
        raise ClientError(
            "you have no projects; create one with scalemesh project create NAME --repo REPO"
        )
    names = ", ".join(p.slug for p in projects)
    raise ClientError(
        f"none of your projects ({names}) builds the repository here; name one: {naming}"
    )
