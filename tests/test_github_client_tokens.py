"""The GitHub App client's tokens: the App JWT, installation tokens, build tokens."""

from __future__ import annotations

from datetime import timedelta

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from app.github.api import GitHubError
from app.github.client import GitHubAppClient
from tests.support import github_client
from tests.support.github_client import INSTALLATION, REPO, SHA, app_settings, mint_path, status
from tests.support.github_fake import APP_ID, FakeGitHubApi
from tests.support.github_shapes import app_private_key

pytestmark = pytest.mark.anyio

# The shared fixtures, bound here: pytest finds a fixture by its name in the test's module.
github = github_client.github
client = github_client.client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- authentication ---------------------------------------------------------------------------


async def test_repo_token_is_minted_fresh_for_one_repository_read_only(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    first = await client.repo_token(INSTALLATION, REPO)
    second = await client.repo_token(INSTALLATION, REPO)

    assert [t.token for t in github.tokens] == [first, second]
    assert first != second
    calls = github.calls_to("POST", mint_path())
    assert [c.json for c in calls] == [
        {"repositories": ["web"], "permissions": {"contents": "read"}}
    ] * 2
    # The token can clone, and nothing more: GitHub refuses it a commit status.
    refused = github.handle(
        httpx.Request(
            "POST",
            f"{github.base_url}/repos/{REPO}/statuses/{SHA}",
            json={"state": "pending"},
            headers={"Authorization": f"token {first}"},
        )
    )
    assert refused.status_code == 403


async def test_the_app_jwt_is_sent_only_to_mint_tokens(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    await status(client)
    await client.repo_token(INSTALLATION, REPO)

    mint, post, build = github.calls
    assert (mint.method, mint.path, build.path) == ("POST", mint_path(), mint_path())
    public_key = serialization.load_pem_private_key(
        app_private_key().encode(), password=None
    ).public_key()
    for call in (mint, build):
        assert call.authorization is not None
        scheme, _, credential = call.authorization.partition(" ")
        assert scheme == "Bearer"
        claims = jwt.decode(credential, public_key, algorithms=["RS256"])  # type: ignore[arg-type]
        assert claims["iss"] == str(APP_ID)
        assert claims["exp"] - claims["iat"] <= 600
    assert post.authorization == f"token {github.tokens[0].token}"


async def test_an_installation_token_serves_many_calls(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    await status(client, "pending")
    await status(client, "success")
    await client.create_comment(INSTALLATION, REPO, 5, "hello")

    assert len(github.calls_to("POST", mint_path())) == 1
    token = github.tokens[0].token
    assert [c.authorization for c in github.calls[1:]] == [f"token {token}"] * 3


async def test_each_installation_has_its_own_token(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    await status(client)
    await client.set_commit_status(
        7, REPO, SHA, state="pending", context="c", description="d", target_url="https://x.test"
    )

    assert [t.installation_id for t in github.tokens] == [INSTALLATION, 7]
    assert github.calls[-1].authorization == f"token {github.tokens[1].token}"


@pytest.mark.parametrize(("ttl_minutes", "mints"), [(6, 1), (4, 2)])
async def test_a_token_close_to_expiry_is_replaced(ttl_minutes: int, mints: int) -> None:
    # Refreshed 5 minutes before expiry: a 6-minute token is reused, a 4-minute one is not.
    with FakeGitHubApi(token_ttl=timedelta(minutes=ttl_minutes)) as github:
        client = GitHubAppClient(app_settings(), github.base_url)
        await status(client)
        await status(client)
        await client.aclose()

    assert len(github.tokens) == mints
    assert github.calls[-1].authorization == f"token {github.tokens[-1].token}"


class SlowMint(httpx.AsyncBaseTransport):
    """Answers from the fake, taking a moment over each token so other calls queue behind it."""

    def __init__(self, github: FakeGitHubApi) -> None:
        self.inner = github.transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/access_tokens"):
            await anyio.sleep(0.05)
        return await self.inner.handle_async_request(request)


async def test_concurrent_calls_mint_one_token(github: FakeGitHubApi) -> None:
    client = GitHubAppClient(app_settings(), github.base_url, transport=SlowMint(github))
    async with anyio.create_task_group() as group:
        for state in ("pending", "pending", "success"):
            group.start_soon(status, client, state)
    await client.aclose()

    assert len(github.tokens) == 1
    assert len(github.commit_statuses[(REPO, SHA)]) == 3


async def test_a_revoked_token_fails_once_then_a_new_one_is_minted(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    await status(client)
    github.revoke_tokens()

    with pytest.raises(GitHubError) as caught:
        await status(client)
    assert caught.value.status == 401
    assert "Bad credentials" in str(caught.value)

    await status(client)
    assert len(github.tokens) == 2
    assert github.calls[-1].authorization == f"token {github.tokens[1].token}"
    assert len(github.commit_statuses[(REPO, SHA)]) == 2


async def test_a_token_expiry_without_zone_is_read_as_utc(
    github: FakeGitHubApi, client: GitHubAppClient
) -> None:
    github.fail(
        "access_tokens",
        status=201,
        body={"token": "ghs_unknown", "expires_at": "2099-01-01T00:00:00"},
        times=1,
    )
    with pytest.raises(GitHubError):  # the fake never minted ghs_unknown
        await status(client)
    await status(client)  # the cached ghs_unknown was dropped on the 401

    assert github.calls[1].authorization == "token ghs_unknown"
    assert github.calls[-1].authorization == f"token {github.tokens[0].token}"
