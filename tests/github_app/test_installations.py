"""Installations: where the App is installed decides what deploys and what the project shows."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.installations.service import install_url
from app.settings import Settings
from tests.support.api import bearer, sign_up
from tests.support.binding import bind
from tests.support.github_app import (
    App,
    installation_rows,
    repositories,
)
from tests.support.github_fake import FakeGitHubApi
from tests.support.webhooks import INSTALLATION, REPO, REPO_ID, payload


def test_the_installation_lifecycle_decides_what_deploys(app: App, token: str) -> None:
    assert installation_rows(app) == [
        {"installation_id": INSTALLATION, "account_login": "Codertocat", "suspended": False}
    ]
    assert repositories(app) == [REPO]

    added = payload("installation_repositories.added")
    assert app.deliver("installation_repositories", added).status_code == 202
    assert repositories(app) == ["Codertocat/Hello-World", "Codertocat/Space"]
    removed = payload("installation_repositories.removed")
    removed["installation"] = added["installation"]
    removed["repositories_removed"] = added["repositories_added"]
    app.deliver("installation_repositories", removed)
    assert repositories(app) == [REPO]

    app.deliver("installation", payload("installation.suspend"))
    assert installation_rows(app)[0]["suspended"] is True
    assert app.deliver("push", payload("push.commits")).status_code == 202
    assert app.deployments() == []  # a suspended installation deploys nothing

    app.deliver("installation", payload("installation.unsuspend"))
    assert installation_rows(app)[0]["suspended"] is False
    again = payload("push.commits")
    again["after"] = "d" * 40  # the same body again would be a replay
    app.deliver("push", again)
    assert len(app.deployments()) == 1

    app.deliver("installation", payload("installation.deleted"))
    assert installation_rows(app) == []
    assert repositories(app) == []
    other = payload("push.commits")
    other["after"] = "e" * 40
    other["installation"] = None  # not an App delivery: nothing can vouch for it
    app.deliver("push", other)
    assert len(app.deployments()) == 1  # uninstalled: nothing more deploys


def test_a_push_before_the_installation_event_still_deploys(app: App) -> None:
    token = sign_up(app.client)
    app.client.post(
        "/project",
        json={"name": "web", "repo": REPO, "production_branch": "main"},
        headers=bearer(token),
    )
    bind(app.client, "web", REPO_ID)
    app.deliver("push", payload("push.commits"))
    assert len(app.deployments()) == 1
    assert installation_rows(app)[0]["installation_id"] == INSTALLATION


def test_the_project_says_whether_the_app_is_installed(app: App) -> None:
    token = sign_up(app.client)
    app.client.post("/project", json={"name": "web", "repo": REPO}, headers=bearer(token))
    app.client.post(
        "/project", json={"name": "elsewhere", "repo": "someone/else"}, headers=bearer(token)
    )
    install_url = "https://github.com/apps/scale-mesh/installations/new"

    project = app.client.get("/projects/web", headers=bearer(token)).json()
    assert project["github"] == {"installed": False, "install_url": install_url}

    app.deliver("installation", payload("installation.created"))
    projects = {p["slug"]: p for p in app.client.get("/projects", headers=bearer(token)).json()}
    assert projects["web"]["github"] == {"installed": True, "install_url": install_url}
    assert projects["elsewhere"]["github"]["installed"] is False


def test_a_project_from_a_plain_git_url_has_no_github_status(app: App) -> None:
    token = sign_up(app.client)
    response = app.client.post(
        "/project",
        json={"name": "plain", "repo": "https://git.example.com/team/site.git"},
        headers=bearer(token),
    )
    assert response.json()["github"] is None


@pytest.mark.parametrize(
    ("api_url", "expected"),
    [
        ("https://api.github.com", "https://github.com/apps/scale-mesh/installations/new"),
        (
            "https://ghe.example.com/api/v3",
            "https://ghe.example.com/apps/scale-mesh/installations/new",
        ),
    ],
)
def test_the_install_link_follows_the_github_host(
    make_settings: Callable[..., Settings], github: FakeGitHubApi, api_url: str, expected: str
) -> None:
    settings = make_settings(**{**github.environ(), "SCALEMESH_GITHUB_API_URL": api_url})
    assert install_url(settings) == expected
    assert install_url(make_settings()) is None
