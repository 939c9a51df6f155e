"""A manual deploy of a bound project asks GitHub's API what a branch or tag is: no `git`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.asgi import create_app
from app.github.client import GitHubAppClient
from app.refs import GitRefResolver
from app.settings import Settings
from tests.support.api import Client, bearer, sign_up
from tests.support.binding import bind
from tests.support.deployments import FakeRunner
from tests.support.github_app import App
from tests.support.github_fake import FakeGitHubApi
from tests.support.webhooks import REPO, REPO_ID, payload

HEAD, TAGGED = "a" * 40, "b" * 40
NO_GIT = GitRefResolver(git="/nonexistent/git")
"""What a server without `git` has: any use of it is a 503 `git_unavailable`."""


@pytest.fixture
def client(settings: Settings, github: FakeGitHubApi) -> Iterator[Client]:
    assert settings.github is not None
    api = GitHubAppClient(settings.github, github.base_url, transport=github.transport)
    app = create_app(
        settings, runner=FakeRunner(), ref_resolver=NO_GIT, reconcile=False, github=api
    )
    with Client(app) as test_client:
        yield test_client


def deploy(client: Client, token: str, project: str, ref: str) -> tuple[int, dict[str, str]]:
    response = client.post("/deploy", json={"project": project, "ref": ref}, headers=bearer(token))
    return response.status_code, response.json()


def test_branches_and_tags_of_a_bound_project_come_from_github(
    client: Client, github: FakeGitHubApi, token: str
) -> None:
    github.refs.set_branch(REPO, "feature/x", HEAD)
    github.refs.set_tag(REPO, "v2", TAGGED)

    branch = deploy(client, token, "web", "feature/x")
    tag = deploy(client, token, "web", "v2")
    missing = deploy(client, token, "web", "nope")

    assert branch[0] == 202, branch
    assert (branch[1]["sha"], branch[1]["branch"]) == (HEAD, "feature/x")
    assert tag[0] == 202, tag
    assert (tag[1]["sha"], tag[1]["branch"]) == (TAGGED, None)
    assert missing[0] == 400
    assert f"no branch or tag 'nope' in {REPO}" in missing[1]["detail"]
    assert github.calls_to("GET", f"/repos/{REPO}/branches/feature/x")


def test_a_branch_name_with_url_characters_is_the_branch_asked_for(
    client: Client, github: FakeGitHubApi, token: str
) -> None:
    """Git allows `#` and `%` in a name; sent bare, `fix#1` would be read as branch `fix`."""
    github.refs.set_branch(REPO, "fix", TAGGED)
    github.refs.set_branch(REPO, "fix#1", HEAD)
    github.refs.set_tag(REPO, "v%2e1", HEAD)

    branch = deploy(client, token, "web", "fix#1")
    tag = deploy(client, token, "web", "v%2e1")

    assert branch[0] == 202, branch
    assert (branch[1]["sha"], branch[1]["branch"]) == (HEAD, "fix#1")
    assert tag[0] == 202, tag
    assert (tag[1]["sha"], tag[1]["branch"]) == (HEAD, None)


def test_another_account_cannot_resolve_or_build_a_repository_it_does_not_own(
    client: Client, github: FakeGitHubApi, token: str
) -> None:
    """The App is installed on Ada's repository; Bob naming it in a project of his own gets
    neither its branch's head nor a build: his project is not bound, as before GitHub's API
    resolved branches."""
    github.refs.set_branch(REPO, "main", HEAD)
    bob = sign_up(client, "bob@example.com")
    made = client.post("/project", json={"name": "copy", "repo": REPO}, headers=bearer(bob))
    assert made.status_code == 201, made.text
    asked = len(github.calls)

    own = deploy(client, bob, "copy", "main")
    theirs = deploy(client, bob, "web", "main")

    assert own[0] == 403
    assert own[1]["error"] == "forbidden"
    assert f"{REPO} is on the GitHub App" in own[1]["detail"]
    assert HEAD not in str(own[1])
    assert theirs[0] == 404
    assert github.calls[asked:] == [], "GitHub was asked nothing for Bob"
    listed = client.get("/projects/copy/deployments", headers=bearer(bob))
    assert listed.status_code == 200
    assert listed.json() == []


def test_github_failing_is_a_503_not_a_500(
    client: Client, github: FakeGitHubApi, token: str
) -> None:
    github.fail("get_branch", status=502)

    status, body = deploy(client, token, "web", "main")

    assert status == 503
    assert body["error"] == "unavailable"
    assert "GitHub could not say what 'main' is" in body["detail"]


def test_without_git_another_repository_is_a_clean_503(client: Client) -> None:
    token = sign_up(client, "bob@example.com")
    made = client.post(
        "/project",
        json={"name": "elsewhere", "repo": "https://git.example.com/a/b.git"},
        headers=bearer(token),
    )
    assert made.status_code == 201, made.text

    status, body = deploy(client, token, "elsewhere", "main")
    by_sha = deploy(client, token, "elsewhere", "c" * 40)

    assert status == 503
    assert body["error"] == "unavailable"
    assert "git is not installed on this server" in body["detail"]
    assert by_sha[0] == 202, "a full sha needs no git"


@pytest.fixture
def token(client: Client, github: FakeGitHubApi) -> str:
    """Ada's project `web` bound to the repository, and the App installed there."""
    token = sign_up(client)
    response = client.post(
        "/project",
        json={"name": "web", "repo": REPO, "production_branch": "main"},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    bind(client, "web", REPO_ID)
    installed = App(client, FakeRunner(), github).deliver(
        "installation", payload("installation.created")
    )
    assert installed.status_code == 202
    return token
