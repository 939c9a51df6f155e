"""Another tenant beside Ada's `web`: Bob's project `other` on a private repository of his own,
covered by another installation of the App, for tests of what one tenant does to another."""

from __future__ import annotations

from typing import Any

from tests.support.api import bearer, sign_up
from tests.support.binding import bind
from tests.support.github_app import App
from tests.support.github_fake import FakeGitHubApi
from tests.support.github_shapes import Call
from tests.support.webhooks import INSTALLATION, payload

OTHER_INSTALLATION = INSTALLATION + 1
OTHER_REPO = "octo-org/other-site"
OTHER_REPO_ID = 4242424
OTHER_SHA = "c" * 40


def add_other_tenant(app: App) -> None:
    """Bob's project on another repository, covered by another installation of the App."""
    bob = sign_up(app.client, "bob@example.com")
    created = app.client.post(
        "/project",
        json={"name": "other", "repo": OTHER_REPO, "production_branch": "main"},
        headers=bearer(bob),
    )
    assert created.status_code == 201, created.text
    bind(app.client, "other", OTHER_REPO_ID)
    installed = payload("installation.created")
    installed["installation"]["id"] = OTHER_INSTALLATION
    installed["installation"]["account"]["login"] = "octo-org"
    installed["repositories"] = [
        {
            "id": OTHER_REPO_ID,
            "node_id": "R_other",
            "name": "other-site",
            "full_name": OTHER_REPO,
            "private": True,
        }
    ]
    assert app.deliver("installation", installed).status_code == 202


def other_push(sha: str) -> dict[str, Any]:
    body = payload("push.commits")
    body["installation"]["id"] = OTHER_INSTALLATION
    body["after"] = sha
    repository = body["repository"]
    repository.update(
        id=OTHER_REPO_ID,
        name="other-site",
        full_name=OTHER_REPO,
        private=True,
        clone_url=f"https://github.com/{OTHER_REPO}.git",
    )
    repository["owner"]["login"] = "octo-org"
    return body


def installation_of(github: FakeGitHubApi, call: Call) -> int:
    """The installation whose token authorised `call`."""
    [minted] = [t for t in github.tokens if call.authorization == f"token {t.token}"]
    return minted.installation_id
