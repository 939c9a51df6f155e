"""The GitHub App client's error translation: every failure becomes a `GitHubError`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.github.api import GitHubError
from app.github.client import GitHubAppClient
from tests.support import github_client
from tests.support.github_client import INSTALLATION, MARKER, REPO, SHA, app_settings, status
from tests.support.github_fake import FakeGitHubApi

pytestmark = pytest.mark.anyio

# The shared fixtures, bound here: pytest finds a fixture by its name in the test's module.
github = github_client.github
client = github_client.client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- error translation ------------------------------------------------------------------------


async def test_server_error(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    github.fail("commit_status", status=500, body={"message": "Something went wrong"})

    with pytest.raises(GitHubError) as caught:
        await status(client)
    assert caught.value.status == 500
    assert str(caught.value) == (
        f"set commit status scalemesh/web on {REPO}@{SHA[:12]}: "
        "GitHub answered 500: Something went wrong"
    )
    assert len(github.calls_to("POST", f"/repos/{REPO}/statuses/{SHA}")) == 1  # no retry


@pytest.mark.parametrize("body", ["<html>Bad gateway</html>", ["not", "an", "object"]])
async def test_error_bodies_without_a_message(
    github: FakeGitHubApi, client: GitHubAppClient, body: Any
) -> None:
    github.fail("create_comment", status=502, body=body)

    with pytest.raises(GitHubError) as caught:
        await client.create_comment(INSTALLATION, REPO, 5, "x")
    assert str(caught.value) == f"comment on {REPO}#5: GitHub answered 502"


async def test_rate_limit_says_when_to_retry(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    github.fail(
        "create_deployment",
        status=403,
        body={"message": "You have exceeded a secondary rate limit."},
        headers={"Retry-After": "30"},
    )

    with pytest.raises(GitHubError) as caught:
        await client.create_deployment(
            INSTALLATION,
            REPO,
            sha=SHA,
            environment="Production",
            description="",
            transient=False,
            production=True,
        )
    assert (caught.value.status, caught.value.retry_after) == (403, 30.0)


async def test_refused_token_mint(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    github.fail("access_tokens", status=404, body={"message": "Not Found"})

    with pytest.raises(GitHubError) as caught:
        await status(client)
    assert caught.value.status == 404
    with pytest.raises(GitHubError, match="mint a build token for octo-org/web"):
        await client.repo_token(INSTALLATION, REPO)
    assert github.commit_statuses == {}


async def test_network_error(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    github.fail("commit_status", error=httpx.ConnectError("Connection refused"))

    with pytest.raises(GitHubError) as caught:
        await status(client)
    assert caught.value.status is None
    assert str(caught.value).endswith("ConnectError: Connection refused")
    assert not isinstance(caught.value.__cause__, GitHubError)


async def test_network_error_without_message(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    github.fail("access_tokens", error=httpx.RemoteProtocolError(""))

    with pytest.raises(GitHubError, match=r"set commit status .*: RemoteProtocolError$"):
        await status(client)


async def test_timeout(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    github.fail("list_comments", error=httpx.ReadTimeout("timed out"))

    with pytest.raises(GitHubError) as caught:
        await client.find_comment(INSTALLATION, REPO, 5, MARKER)
    assert caught.value.status is None
    assert "did not answer within 10 s" in str(caught.value)


async def test_every_request_has_a_timeout_and_an_api_version(github: FakeGitHubApi) -> None:
    seen: list[tuple[str, str | None, str | None, Any]] = []

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(
            (
                request.url.path,
                request.headers.get("x-github-api-version"),
                request.headers.get("user-agent"),
                request.extensions["timeout"],
            )
        )
        return github.handle(request)

    client = GitHubAppClient(app_settings(), github.base_url, transport=httpx.MockTransport(spy))
    await status(client)
    comment_id = await client.create_comment(INSTALLATION, REPO, 5, MARKER)
    await client.update_comment(INSTALLATION, REPO, comment_id, MARKER)
    await client.find_comment(INSTALLATION, REPO, 5, MARKER)
    deployment_id = await client.create_deployment(
        INSTALLATION, REPO, sha=SHA, environment="Production", description="",
        transient=False, production=True,
    )  # fmt: skip
    await client.set_deployment_status(
        INSTALLATION, REPO, deployment_id, state="queued", environment_url=None, log_url="x",
        description="",
    )  # fmt: skip
    await client.repo_token(INSTALLATION, REPO)
    await client.aclose()

    timeout = {"connect": 10.0, "read": 10.0, "write": 10.0, "pool": 10.0}
    assert len(seen) == 8
    assert {(version, agent, str(limits)) for _, version, agent, limits in seen} == {
        ("2022-11-28", "ScaleMesh", str(timeout))
    }


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("create_comment", "not json"),
        ("create_comment", b"\xff\xfe"),
        ("create_comment", ["a", "list"]),
        ("create_comment", {"id": "7"}),
        ("create_comment", {"id": True}),
        ("create_deployment", {"message": "Auto-merged main into feature on deployment."}),
    ],
)
async def test_malformed_answers(
    github: FakeGitHubApi, client: GitHubAppClient, route: str, body: Any
) -> None:
    github.fail(route, status=201, body=body)

    async def call() -> int:
        if route == "create_comment":
            return await client.create_comment(INSTALLATION, REPO, 5, "x")
        return await client.create_deployment(
            INSTALLATION,
            REPO,
            sha=SHA,
            environment="Production",
            description="",
            transient=False,
            production=True,
        )

    with pytest.raises(GitHubError) as caught:
        await call()
    assert caught.value.status is None


@pytest.mark.parametrize(
    "body",
    [
        {"expires_at": "2099-01-01T00:00:00Z"},
        {"token": "", "expires_at": "2099-01-01T00:00:00Z"},
        {"token": "ghs_x"},
        {"token": "ghs_x", "expires_at": "tomorrow"},
    ],
)
async def test_malformed_token_answers(
    github: FakeGitHubApi, client: GitHubAppClient, body: dict[str, str]
) -> None:
    github.fail("access_tokens", status=201, body=body)

    with pytest.raises(GitHubError, match="token"):
        await client.repo_token(INSTALLATION, REPO)
    with pytest.raises(GitHubError, match="token"):
        await status(client)
    assert github.commit_statuses == {}


async def test_malformed_comment_list(github: FakeGitHubApi, client: GitHubAppClient) -> None:
    for body in ("<html>", {"message": "not a list"}, [1, 2]):
        github.fail("list_comments", status=200, body=body)
        with pytest.raises(GitHubError, match="look for our comment"):
            await client.find_comment(INSTALLATION, REPO, 5, MARKER)
    github.fail("list_comments", status=200, body=[{"id": "x", "body": MARKER}])
    with pytest.raises(GitHubError, match="has no id"):
        await client.find_comment(INSTALLATION, REPO, 5, MARKER)
    github.fail("list_comments", status=200, body=[{"id": 1, "body": None}])
    assert await client.find_comment(INSTALLATION, REPO, 5, MARKER) is None
