"""The GitHub App client: the requests GitHub receives, the input it refuses, and its wiring."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from githubkit_schemas.latest.models import (
    Deployment,
    DeploymentStatus,
    InstallationToken,
    IssueComment,
    Status,
)

from app.asgi import github_from_settings
from app.github import client as client_module
from app.github.api import CommentGone, GitHubApi, GitHubError
from app.github.client import GitHubAppClient
from app.settings import Settings
from tests.support import github_client
from tests.support.github_client import (
    INSTALLATION,
    MARKER,
    PREVIEW,
    REPO,
    SHA,
    app_settings,
    mint_path,
    status,
)
from tests.support.github_fake import APP_ID, FakeGitHubApi
from tests.support.github_shapes import Call, app_private_key

pytestmark = pytest.mark.anyio

# The shared fixtures, bound here: pytest finds a fixture by its name in the test's module.
github = github_client.github
client = github_client.client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- what GitHub receives ---------------------------------------------------------------------


async def test_commit_status_body(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    await status(client, "failure", description="x" * 200)

    (call,) = github.calls_to("POST", f"/repos/{REPO}/statuses/{SHA}")
    assert call.json == {
        "state": "failure",
        "context": "scalemesh/web",
        "description": "x" * 139 + "…",
        "target_url": "https://scalemesh.example/deployments/7",
    }
    assert github.commit_statuses == {(REPO, SHA): [call.json]}


async def test_deployment_and_its_statuses(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    deployment_id = await client.create_deployment(
        INSTALLATION,
        REPO,
        sha=SHA,
        environment=PREVIEW,
        description="Preview of feature-x",
        transient=True,
        production=False,
    )
    await client.set_deployment_status(
        INSTALLATION,
        REPO,
        deployment_id,
        state="in_progress",
        environment_url=None,
        log_url="https://scalemesh.example/deployments/7",
        description="Building…",
    )
    await client.set_deployment_status(
        INSTALLATION,
        REPO,
        deployment_id,
        state="success",
        environment_url="https://feature-x--web.example.net",
        log_url="https://scalemesh.example/deployments/7",
        description="Deployed",
    )

    deployment = github.deployments[deployment_id]
    assert deployment.repository == REPO
    assert github.calls_to("POST", f"/repos/{REPO}/deployments")[0].json == {
        "ref": SHA,
        "environment": PREVIEW,
        "description": "Preview of feature-x",
        "required_contexts": [],
        "auto_merge": False,
        "transient_environment": True,
        "production_environment": False,
    }
    assert deployment.statuses == [
        {
            "state": "in_progress",
            "log_url": "https://scalemesh.example/deployments/7",
            "description": "Building…",
        },
        {
            "state": "success",
            "log_url": "https://scalemesh.example/deployments/7",
            "description": "Deployed",
            "environment_url": "https://feature-x--web.example.net",
        },
    ]
    assert [c.path for c in github.calls[-2:]] == [
        f"/repos/{REPO}/deployments/{deployment_id}/statuses"
    ] * 2


async def test_comment_created_then_edited_in_place(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    comment_id = await client.create_comment(INSTALLATION, REPO, 5, f"{MARKER}\nBuilding")
    await client.update_comment(INSTALLATION, REPO, comment_id, f"{MARKER}\nReady")

    (comment,) = github.comments_on(REPO, 5)
    assert (comment.id, comment.body) == (comment_id, f"{MARKER}\nReady")
    assert github.calls_to("POST", f"/repos/{REPO}/issues/5/comments")[0].json == {
        "body": f"{MARKER}\nBuilding"
    }
    assert github.calls[-1] == Call(
        "PATCH",
        f"/repos/{REPO}/issues/comments/{comment_id}",
        {"body": f"{MARKER}\nReady"},
        f"token {github.tokens[0].token}",
    )


async def test_editing_a_deleted_comment_raises_comment_gone(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    comment_id = await client.create_comment(INSTALLATION, REPO, 5, MARKER)
    github.delete_comment(comment_id)

    with pytest.raises(CommentGone) as caught:
        await client.update_comment(INSTALLATION, REPO, comment_id, MARKER)
    assert caught.value.status == 404


@pytest.mark.parametrize(("code", "error"), [(410, CommentGone), (500, GitHubError)])
async def test_edit_failures(
    github: FakeGitHubApi, client: GitHubAppClient, code: int, error: type[GitHubError]
) -> None:
    comment_id = await client.create_comment(INSTALLATION, REPO, 5, MARKER)
    github.fail("update_comment", status=code)

    with pytest.raises(GitHubError) as caught:
        await client.update_comment(INSTALLATION, REPO, comment_id, MARKER)
    assert (type(caught.value), caught.value.status) == (error, code)


async def test_find_comment_reads_every_page() -> None:
    with FakeGitHubApi(max_per_page=2) as github:
        client = GitHubAppClient(app_settings(), github.base_url)
        for n in range(4):
            github.add_comment(REPO, 5, f"LGTM {n}")
        ours = github.add_comment(REPO, 5, f"{MARKER}\n| project |", login="scalemesh[bot]")
        github.add_comment(REPO, 5, f"{MARKER} quoted later")
        github.add_comment(REPO, 6, MARKER)

        assert await client.find_comment(INSTALLATION, REPO, 5, MARKER) == ours.id
        assert await client.find_comment(INSTALLATION, REPO, 5, "<!-- other -->") is None
        await client.aclose()

    pages = [c.path for c in github.calls if c.method == "GET"]
    listing = f"/repos/{REPO}/issues/5/comments?per_page=100"
    assert pages == [f"{listing}&page={n}" for n in (1, 2, 3, 1, 2, 3)]


async def test_find_comment_on_a_pr_without_comments(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    assert await client.find_comment(INSTALLATION, REPO, 9, MARKER) is None
    assert [c.path for c in github.calls[1:]] == [
        f"/repos/{REPO}/issues/9/comments?per_page=100&page=1"
    ]


async def test_find_comment_gives_up_after_max_pages(
    github: FakeGitHubApi,
    client: GitHubAppClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(client_module, "MAX_COMMENT_PAGES", 2)
    github.fail(
        "list_comments",
        status=200,
        body=[],
        headers={"Link": f'<{github.base_url}/x?page=99>; rel="next"'},
    )

    with caplog.at_level(logging.WARNING, logger="app.github.client"):
        assert await client.find_comment(INSTALLATION, REPO, 5, MARKER) is None

    assert len(github.calls_to("GET", f"/repos/{REPO}/issues/5/comments")) == 2
    assert [r.getMessage() for r in caplog.records] == ["comment search gave up"]


async def test_enterprise_server_url(make_settings: Callable[..., Settings]) -> None:
    with FakeGitHubApi("https://ghe.example.com/api/v3") as github:
        client = github_from_settings(make_settings(**github.environ()))
        assert isinstance(client, GitHubAppClient)
        comment_id = await client.create_comment(INSTALLATION, REPO, 5, "hi")
        await client.aclose()

    assert [c.path for c in github.calls] == [mint_path(), f"/repos/{REPO}/issues/5/comments"]
    assert github.comments[comment_id].body == "hi"


# --- refusing bad input before GitHub sees it -------------------------------------------------


@pytest.mark.parametrize("repository", ["web", "a/b/c", "octo/..", "../web", "/web", "o/", "o w/x"])
async def test_malformed_repository_names_are_refused(
    github: FakeGitHubApi, client: GitHubAppClient, repository: str
) -> None:
    with pytest.raises(GitHubError, match="not a repository name"):
        await status(client, repository=repository)
    with pytest.raises(GitHubError, match="not a repository name"):
        await client.repo_token(INSTALLATION, repository)
    assert github.calls == []


async def test_bad_sha_and_states_are_refused(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    with pytest.raises(GitHubError, match="not a commit sha"):
        await client.set_commit_status(
            INSTALLATION, REPO, "../main", state="pending", context="c", description="d",
            target_url="https://x.test",
        )  # fmt: skip
    with pytest.raises(GitHubError, match="not a commit status state"):
        await status(client, "queued")
    with pytest.raises(GitHubError, match="not a deployment status state"):
        await client.set_deployment_status(
            INSTALLATION, REPO, 1, state="done", environment_url=None, log_url="x", description=""
        )
    assert github.calls == []


# --- wiring -----------------------------------------------------------------------------------


async def test_github_from_settings(make_settings: Callable[..., Settings]) -> None:
    assert github_from_settings(make_settings()) is None

    github = FakeGitHubApi("https://ghe.example.com/api/v3")
    client = github_from_settings(make_settings(**github.environ()))
    assert isinstance(client, GitHubAppClient)
    assert isinstance(client, GitHubApi)
    assert "ghe.example.com/api/v3/" in repr(client)
    await client.aclose()


def test_fake_answers_satisfy_githubkit_models(github: FakeGitHubApi) -> None:
    """Code reading githubkit's parsed models (not only our client) can use the fake."""
    now = time.time()
    assertion = jwt.encode(
        {"iss": str(APP_ID), "iat": int(now) - 60, "exp": int(now) + 540},
        app_private_key(),
        algorithm="RS256",
    )

    def send(method: str, path: str, body: Any = None, auth: str = "") -> httpx.Response:
        request = httpx.Request(
            method, f"{github.base_url}{path}", json=body, headers={"Authorization": auth}
        )
        return github.handle(request)

    minted = send("POST", mint_path(), None, f"Bearer {assertion}")
    assert minted.status_code == 201
    token = InstallationToken.model_validate(minted.json())
    auth = f"token {token.token}"
    Status.model_validate(
        send("POST", f"/repos/{REPO}/statuses/{SHA}", {"state": "success"}, auth).json()
    )
    deployment = Deployment.model_validate(
        send("POST", f"/repos/{REPO}/deployments", {"ref": SHA}, auth).json()
    )
    DeploymentStatus.model_validate(
        send(
            "POST", f"/repos/{REPO}/deployments/{deployment.id}/statuses", {"state": "queued"}, auth
        ).json()
    )
    comment = IssueComment.model_validate(
        send("POST", f"/repos/{REPO}/issues/5/comments", {"body": "b"}, auth).json()
    )
    IssueComment.model_validate(
        send("PATCH", f"/repos/{REPO}/issues/comments/{comment.id}", {"body": "c"}, auth).json()
    )
    listed = send("GET", f"/repos/{REPO}/issues/5/comments", None, auth)
    assert [IssueComment.model_validate(c).id for c in listed.json()] == [comment.id]


def test_fake_refuses_what_github_refuses(github: FakeGitHubApi) -> None:
    def send(method: str, path: str, auth: str | None, body: Any = None) -> int:
        headers = {"Authorization": auth} if auth else {}
        request = httpx.Request(method, f"{github.base_url}{path}", json=body, headers=headers)
        return github.handle(request).status_code

    wrong_key = jwt.encode({"iss": str(APP_ID)}, "k" * 32, algorithm="HS256")
    assert send("POST", mint_path(), None) == 401
    assert send("POST", mint_path(), f"Bearer {wrong_key}") == 401
    other_app = jwt.encode({"iss": "1"}, app_private_key(), algorithm="RS256")
    assert send("POST", mint_path(), f"Bearer {other_app}") == 401
    assert send("POST", f"/repos/{REPO}/statuses/{SHA}", "token ghs_nope", {}) == 401
    assert send("GET", "/rate_limit", None) == 404
    assert send("DELETE", f"/repos/{REPO}/issues/comments/1", None) == 404
    with pytest.raises(ValueError, match="unknown route"):
        github.fail("delete_repo")
