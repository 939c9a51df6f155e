"""The client picks the project building the git repository in the current directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.client import ClientError
from app.client.answers import ProjectAnswer
from app.client.repository import choose_project, local_repos, repo_key
from tests.support.cli_client import make_repo
from tests.support.git import git

# --- choosing the project -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://github.com/Octo/Web.git", "github.com/octo/web"),
        ("https://github.com/octo/web/", "github.com/octo/web"),
        ("ssh://git@github.com:22/octo/web.git", "github.com/octo/web"),
        ("git@github.com:Octo/web.git", "github.com/octo/web"),
        ("file:///srv/../srv/site", "/srv/site"),
        ("../site", "/work/site"),
        ("/srv/a:b", "/srv/a:b"),
    ],
)
def test_spellings_of_one_repository_share_a_key(url: str, key: str) -> None:
    assert repo_key(url, Path("/work/here")) == key


def project(slug: str, git_url: str) -> ProjectAnswer:
    return ProjectAnswer(slug=slug, production_url="", repo="", git_url=git_url, env=[])


def test_the_project_comes_from_the_git_remote(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "clone")
    git(repo, "remote", "add", "origin", "git@github.com:Octo/Web.git")
    projects = [
        project("web", "https://github.com/octo/web.git"),
        project("docs", "https://github.com/octo/docs.git"),
    ]

    here = local_repos(repo / "")

    assert here == {"github.com/octo/web", os.path.realpath(repo)}
    assert choose_project(projects, here, repo) == "web"
    assert choose_project(projects[1:], here, repo) == "docs"  # the only one
    with pytest.raises(ClientError, match="projects web, web2 all build this repository"):
        choose_project([*projects, project("web2", projects[0].git_url)], here, repo)
    with pytest.raises(ClientError, match=r"none of your projects \(docs, blog\) builds"):
        choose_project([projects[1], project("blog", projects[1].git_url)], here, repo)
    with pytest.raises(ClientError, match="you have no projects; create one"):
        choose_project([], here, repo)


def test_without_git_nothing_matches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert local_repos(tmp_path) == set()  # not a repository
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert local_repos(tmp_path) == set()
