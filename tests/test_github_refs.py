"""Branch heads and refs read through the GitHub API; which GitHub errors are permanent."""

from __future__ import annotations

import pytest

from app.github.api import GitHubError
from app.github.client import GitHubAppClient
from tests.support import github_client
from tests.support.github_client import INSTALLATION, REPO
from tests.support.github_fake import FakeGitHubApi

pytestmark = pytest.mark.anyio

github = github_client.github
client = github_client.client

HEAD = "a" * 40
TAGGED = "b" * 40


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_branch_head_is_what_github_says(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    github.refs.set_branch(REPO, "feature/x", HEAD)

    assert await client.branch_head(INSTALLATION, REPO, "feature/x") == HEAD
    assert await client.branch_head(INSTALLATION, REPO, "gone") is None
    (call,) = github.calls_to("GET", f"/repos/{REPO}/branches/feature/x")
    assert (call.authorization or "").startswith("token ")


async def test_commit_of_a_branch_a_tag_a_sha_and_nothing(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    github.refs.set_branch(REPO, "main", HEAD)
    github.refs.set_tag(REPO, "v1.0", TAGGED)

    assert await client.commit_of(INSTALLATION, REPO, "main") == HEAD
    assert await client.commit_of(INSTALLATION, REPO, "v1.0") == TAGGED
    assert await client.commit_of(INSTALLATION, REPO, TAGGED) == TAGGED
    assert await client.commit_of(INSTALLATION, REPO, "c" * 40) is None  # 422
    assert await client.commit_of(INSTALLATION, REPO, "nope") is None  # 404


async def test_server_errors_and_odd_answers_raise(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    github.fail("get_branch", status=502)
    with pytest.raises(GitHubError) as raised:
        await client.branch_head(INSTALLATION, REPO, "main")
    assert raised.value.status == 502
    github.fail("get_commit", status=500)
    with pytest.raises(GitHubError):
        await client.commit_of(INSTALLATION, REPO, "main")
    github.fail("get_branch", status=200, body={"commit": {"sha": "not a sha"}})
    with pytest.raises(GitHubError, match="no commit sha"):
        await client.branch_head(INSTALLATION, REPO, "main")
    github.fail("get_branch", status=200, body={"commit": None})
    with pytest.raises(GitHubError, match="no commit sha"):
        await client.branch_head(INSTALLATION, REPO, "main")


@pytest.mark.parametrize(
    ("status", "retry_after", "permanent"),
    [
        (None, None, False),
        (500, None, False),
        (502, None, False),
        (408, None, False),
        (429, 30.0, False),
        (403, 30.0, False),
        (403, None, True),
        (404, None, True),
        (422, None, True),
        (401, None, False),
        (301, None, False),
    ],
)
def test_which_errors_are_permanent(
    status: int | None, retry_after: float | None, permanent: bool
) -> None:
    assert GitHubError("x", status, retry_after=retry_after).permanent is permanent
