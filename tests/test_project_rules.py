"""A project's rules as pure functions: slugs, repositories, branches, paths and commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.errors import UserError
from app.projects.rules import check_branch, check_command, check_relative_dir, parse_repo, slugify
from app.settings import Settings


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("My Site", "my-site"),
        ("  Crème Brûlée  ", "creme-brulee"),
        ("a__b--c", "a-b-c"),
        ("UPPER123", "upper123"),
        ("x" * 80, "x" * 48),
        ("a" * 47 + "-b", "a" * 47),
        ("日本", ""),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug


@pytest.fixture
def local(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.mark.parametrize(
    ("repo", "git_url", "github"),
    [
        (
            "octocat/Hello-World",
            "https://github.com/octocat/Hello-World.git",
            "octocat/Hello-World",
        ),
        ("octocat/site.git", "https://github.com/octocat/site.git", "octocat/site"),
        ("https://github.com/o/r", "https://github.com/o/r.git", "o/r"),
        ("https://github.com/o/r.git/", "https://github.com/o/r.git", "o/r"),
        ("https://gitlab.com/g/sub/r.git", "https://gitlab.com/g/sub/r.git", None),
        ("https://codeberg.org/o/r", "https://codeberg.org/o/r", None),
    ],
)
def test_parse_repo_accepts(repo: str, git_url: str, github: str | None, local: Settings) -> None:
    source = parse_repo(repo, local)

    assert (source.git_url, source.github_repository) == (git_url, github)


def test_parse_repo_knows_github_enterprise(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(SCALEMESH_GITHUB_API_URL="https://ghe.example.com/api/v3")

    source = parse_repo("https://ghe.example.com/team/site", settings)

    assert source.github_repository == "team/site"
    assert source.git_url == "https://ghe.example.com/team/site.git"


@pytest.mark.parametrize(
    ("repo", "fragment"),
    [
        ("", "repo is required"),
        ("git@github.com:o/r.git", "SSH URLs"),
        ("ssh://git@github.com/o/r.git", "SSH URLs"),
        ("http://example.com/r.git", "use https://"),
        ("ftp://example.com/r.git", "not owner/name or a git URL"),
        ("https://user:pw@example.com/r.git", "credentials"),
        ("https://example.com/r.git?ref=x", "?query"),
        ("https://example.com/", "no repository path"),
        ("o/r/x", "not owner/name"),
        ("-o/r", "not owner/name"),
        ("o/..", "not owner/name"),
        ("file://relative/path", "absolute path"),
        ("https://[broken/r.git", "not a valid URL"),
        ("https://example.com/a b", "spaces or control characters"),
        ("file:///a\x00b", "spaces or control characters"),
        ("file:///" + "a" * 5000, "no git repository at"),
    ],
)
def test_parse_repo_refuses(repo: str, fragment: str, local: Settings) -> None:
    with pytest.raises(UserError, match=None) as caught:
        parse_repo(repo, local)

    assert fragment in caught.value.detail


def test_file_urls_are_refused_with_the_ecs_runner(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(
        SCALEMESH_RUNNER="ecs",
        SCALEMESH_ECS_CLUSTER="builds",
        SCALEMESH_ECS_TASK_DEFINITION="builder",
        SCALEMESH_ECS_SUBNETS="subnet-1",
        SCALEMESH_ECS_SECURITY_GROUPS="sg-1",
        SCALEMESH_ECS_UPLOAD_ROLE_ARN="arn:aws:iam::123456789012:role/scalemesh-build-upload",
    )

    with pytest.raises(UserError) as caught:
        parse_repo(f"file://{tmp_path}", settings)

    assert "only work with the local runner" in caught.value.detail


@pytest.mark.parametrize(
    ("branch", "ok"),
    [
        ("main", True),
        ("release/v1.2", True),
        ("refs/heads/dev", True),
        ("", False),
        ("a b", False),
        ("-x", False),
        ("x.lock", False),
        ("a..b", False),
        ("a~1", False),
        ("end/", False),
        ("x" * 256, False),
    ],
)
def test_check_branch(branch: str, ok: bool) -> None:
    if ok:
        assert check_branch(branch) == branch.removeprefix("refs/heads/")
    else:
        with pytest.raises(UserError):
            check_branch(branch)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("", None), (".", None), ("site", "site"), ("a/./b/", "a/b")],
)
def test_check_relative_dir_accepts(raw: str | None, expected: str | None) -> None:
    assert check_relative_dir("root_directory", raw) == expected


@pytest.mark.parametrize("raw", ["/abs", "../up", "a/../../b", "a\\b", "a\x00b", "x" * 256])
def test_check_relative_dir_refuses(raw: str) -> None:
    with pytest.raises(UserError, match="root_directory"):
        check_relative_dir("root_directory", raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("  ", None), (" npm run build ", "npm run build")],
)
def test_check_command_accepts(raw: str | None, expected: str | None) -> None:
    assert check_command("build_command", raw) == expected


@pytest.mark.parametrize("raw", ["a\nb", "x" * 1001, "echo 'open", "a\x00"])
def test_check_command_refuses(raw: str) -> None:
    with pytest.raises(UserError, match="build_command"):
        check_command("build_command", raw)
