"""Resolving a branch, tag or sha against a real git repository."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from app.refs import GitRefResolver, GitUnavailable, RefError, resolve_on_github


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[str, dict[str, str]]:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "index.html").write_text("one")
    git(path, "add", ".")
    git(path, "commit", "-qm", "one")
    first = git(path, "rev-parse", "HEAD")
    git(path, "tag", "-a", "v1", "-m", "release one")
    git(path, "tag", "light")
    git(path, "checkout", "-qb", "feature/x")
    (path / "index.html").write_text("two")
    git(path, "commit", "-qam", "two")
    feature = git(path, "rev-parse", "HEAD")
    return f"file://{path}", {"main": first, "feature": feature}


def resolve(url: str, ref: str) -> object:
    return asyncio.run(GitRefResolver().resolve(url, ref))


def test_a_branch_resolves_to_its_head(repo: tuple[str, dict[str, str]]) -> None:
    url, shas = repo

    main = asyncio.run(GitRefResolver().resolve(url, "main"))
    feature = asyncio.run(GitRefResolver().resolve(url, "refs/heads/feature/x"))

    assert (main.sha, main.branch, main.ref) == (shas["main"], "main", "main")
    assert (feature.sha, feature.branch) == (shas["feature"], "feature/x")


@pytest.mark.parametrize("tag", ["v1", "light", "refs/tags/v1"])
def test_a_tag_resolves_to_its_commit(repo: tuple[str, dict[str, str]], tag: str) -> None:
    url, shas = repo

    resolved = asyncio.run(GitRefResolver().resolve(url, tag))

    assert resolved.sha == shas["main"]  # the commit, not the annotated tag object
    assert resolved.branch is None


def test_a_full_sha_needs_no_lookup() -> None:
    resolved = asyncio.run(GitRefResolver().resolve("file:///nowhere", "A" * 40))

    assert resolved.sha == "a" * 40
    assert resolved.branch is None


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("abc1234", "short sha"),
        ("nope", "no branch or tag 'nope'"),
        ("-upload-pack=x", "not a branch, a tag or a full sha"),
        ("a b", "not a branch, a tag or a full sha"),
    ],
)
def test_bad_refs_are_explained(repo: tuple[str, dict[str, str]], ref: str, fragment: str) -> None:
    url, _ = repo

    with pytest.raises(RefError, match=fragment):
        asyncio.run(GitRefResolver().resolve(url, ref))


def test_an_unreachable_repository_is_explained(tmp_path: Path) -> None:
    with pytest.raises(RefError, match="could not read file://"):
        asyncio.run(GitRefResolver().resolve(f"file://{tmp_path}/missing", "main"))


def test_a_silent_server_times_out(tmp_path: Path) -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        resolver = GitRefResolver(timeout=0.5)

        with pytest.raises(RefError, match=r"did not answer within 0\.5 s"):
            asyncio.run(resolver.resolve(f"http://127.0.0.1:{port}/repo.git", "main"))


def test_without_git_a_branch_is_git_unavailable_not_a_crash() -> None:
    """The API image once had no git: `FileNotFoundError` became a 500."""
    resolver = GitRefResolver(git="/nonexistent/git")

    with pytest.raises(GitUnavailable, match="git is not installed on this server"):
        asyncio.run(resolver.resolve("https://git.example.com/a/b.git", "main"))
    assert asyncio.run(resolver.resolve("https://x/y.git", "d" * 40)).sha == "d" * 40


class NoGitHub:
    """A `CommitLookup` that must not be asked."""

    async def branch_head(self, installation_id: int, repository: str, branch: str) -> str | None:
        raise AssertionError("asked GitHub")

    async def commit_of(self, installation_id: int, repository: str, ref: str) -> str | None:
        raise AssertionError("asked GitHub")


def test_a_full_sha_needs_no_github_either() -> None:
    resolved = asyncio.run(resolve_on_github(NoGitHub(), 1, "o/r", " " + "E" * 40))

    assert (resolved.sha, resolved.branch) == ("e" * 40, None)
    with pytest.raises(RefError, match="short sha"):
        asyncio.run(resolve_on_github(NoGitHub(), 1, "o/r", "abc1234"))
