"""Local git repositories for the benchmarks: a directory's files, committed once on `main`."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`; its standard output, stripped (raises if git fails)."""
    done = subprocess.run(  # noqa: S603 - a fixed argv
        ["git", *args],  # noqa: S607 - git from PATH, as the builder finds it
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def commit_all(repo: Path) -> str:
    """Make `repo` a git repository holding its files in one commit on `main`; that commit."""
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qm", "site")
    return git(repo, "rev-parse", "HEAD")
