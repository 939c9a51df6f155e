"""Waits GitHub asks for: read from every header form, and honoured by the App client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from app.github.api import GitHubError
from app.github.client import GitHubAppClient
from app.github.transport import normalise_wait_headers
from app.github.waits import DEFAULT_WAIT, normalised_retry_after, retry_after_seconds, wait_of
from tests.support import github_client
from tests.support.clock import FrozenClock
from tests.support.github_client import INSTALLATION, REPO, SHA, app_settings, mint_path, status
from tests.support.github_fake import FakeGitHubApi

NOW = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
RESET_IN_90 = str(int(NOW.timestamp()) + 90)

github = github_client.github


# --- reading the headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "message", "wait"),
    [
        (403, {"Retry-After": "30"}, "You have exceeded a secondary rate limit.", 30.0),
        (429, {"Retry-After": " 0 "}, "", 0.0),
        (429, {"Retry-After": format_datetime(NOW + timedelta(seconds=45), usegmt=True)}, "", 45.0),
        (429, {"Retry-After": "Wed, 02 Dec 2026 00:00:00 GMT"}, "", 0.0),  # already past
        (503, {"Retry-After": "120"}, "", 120.0),  # a Retry-After counts on any answer
        (429, {"Retry-After": "soon"}, "", DEFAULT_WAIT),  # meaningless: a bare 429
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": RESET_IN_90}, "", 90.0),
        (429, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"}, "", 0.0),  # past
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "later"}, "", None),
        (429, {}, "", DEFAULT_WAIT),
        (403, {}, "API rate limit exceeded for installation ID 42.", DEFAULT_WAIT),
        # Every answer carries x-ratelimit-reset; with calls left it asks for nothing.
        (403, {"x-ratelimit-remaining": "12", "x-ratelimit-reset": RESET_IN_90}, "", None),
        (403, {}, "Resource not accessible by integration", None),
        (422, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": RESET_IN_90}, "", None),
        (500, {}, "", None),
    ],
)
def test_wait_of_every_header_form(
    status: int, headers: dict[str, str], message: str, wait: float | None
) -> None:
    assert wait_of(status, httpx.Headers(headers), message, NOW) == wait


def test_retry_after_as_a_date_without_a_zone_is_utc() -> None:
    assert retry_after_seconds("Thu, 03 Dec 2026 03:00:10 -0000", NOW) == 10.0


@pytest.mark.parametrize(
    ("value", "normalised"),
    [("17", "17"), ("Thu, 03 Dec 2026 03:00:09 GMT", "9"), ("", None), ("soon", None)],
)
def test_retry_after_in_whole_seconds(value: str, normalised: str | None) -> None:
    assert normalised_retry_after(value, NOW) == normalised


def test_the_transport_puts_wait_headers_in_the_form_githubkit_reads() -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    dated = httpx.Headers({"Retry-After": soon, "x-ratelimit-reset": "1767000000"})
    normalise_wait_headers(dated)
    assert 118 <= int(dated["retry-after"]) <= 120
    assert dated["x-ratelimit-reset"] == "1767000000"

    nonsense = httpx.Headers({"Retry-After": "soon", "x-ratelimit-reset": "later"})
    normalise_wait_headers(nonsense)
    assert "retry-after" not in nonsense
    assert "x-ratelimit-reset" not in nonsense

    plain = httpx.Headers({"content-type": "application/json"})
    normalise_wait_headers(plain)
    assert dict(plain) == {"content-type": "application/json"}


# --- the client honours them ------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def client(github: FakeGitHubApi, clock: FrozenClock) -> AsyncIterator[GitHubAppClient]:
    client = GitHubAppClient(app_settings(), github.base_url, clock=clock)
    yield client
    await client.aclose()


def statuses_sent(github: FakeGitHubApi) -> int:
    return len(github.calls_to("POST", f"/repos/{REPO}/statuses/{SHA}"))


@pytest.mark.anyio
async def test_a_retry_after_holds_back_that_installation_until_it_is_over(
    github: FakeGitHubApi, client: GitHubAppClient, clock: FrozenClock
) -> None:
    github.fail("commit_status", status=429, headers={"Retry-After": "30"}, times=1)
    with pytest.raises(GitHubError) as caught:
        await status(client)
    assert (caught.value.status, caught.value.retry_after) == (429, 30.0)
    assert not caught.value.permanent

    clock.advance(20)
    with pytest.raises(GitHubError, match="GitHub asked us to wait; 10 s to go") as held:
        await status(client)
    assert held.value.retry_after == 10.0
    assert not held.value.permanent
    assert statuses_sent(github) == 1  # refused here: GitHub was not asked

    # Another installation has its own limit.
    await client.set_commit_status(
        INSTALLATION + 1, REPO, SHA, state="pending", context="c", description="", target_url="u"
    )

    clock.advance(10)
    await status(client)
    assert statuses_sent(github) == 3
    assert github.commit_statuses[(REPO, SHA)][-1]["state"] == "pending"


@pytest.mark.anyio
async def test_a_date_retry_after_is_a_wait_not_a_crash(
    github: FakeGitHubApi, client: GitHubAppClient, clock: FrozenClock
) -> None:
    until = datetime.now(UTC) + timedelta(seconds=300)
    github.fail(
        "create_comment",
        status=403,
        body={"message": "You have exceeded a secondary rate limit."},
        headers={"Retry-After": format_datetime(until, usegmt=True)},
        times=1,
    )
    with pytest.raises(GitHubError) as caught:
        await client.create_comment(INSTALLATION, REPO, 5, "x")
    assert caught.value.retry_after is not None
    assert 298 <= caught.value.retry_after <= 300
    assert not caught.value.permanent
    with pytest.raises(GitHubError, match="GitHub asked us to wait"):
        await client.create_comment(INSTALLATION, REPO, 5, "x")
    clock.advance(300)
    assert await client.create_comment(INSTALLATION, REPO, 5, "x") > 0


@pytest.mark.anyio
async def test_a_rate_limited_token_mint_holds_back_the_app(
    github: FakeGitHubApi, client: GitHubAppClient, clock: FrozenClock
) -> None:
    reset = str(int(datetime.now(UTC).timestamp()) + 60)
    github.fail(
        "access_tokens",
        status=403,
        body={"message": "API rate limit exceeded"},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
        times=1,
    )
    with pytest.raises(GitHubError):
        await client.repo_token(INSTALLATION, REPO)
    with pytest.raises(GitHubError, match=r"mint a build token .*GitHub asked us to wait"):
        await client.repo_token(INSTALLATION, REPO)
    with pytest.raises(GitHubError, match=r"set commit status .*GitHub asked us to wait"):
        await status(client)  # needs a token, minted as the App
    assert len(github.calls_to("POST", mint_path())) == 1

    clock.advance(61)
    assert await client.repo_token(INSTALLATION, REPO)
    await status(client)
    assert statuses_sent(github) == 1


@pytest.mark.anyio
async def test_a_bare_429_waits_a_minute(
    github: FakeGitHubApi, client: GitHubAppClient, clock: FrozenClock
) -> None:
    github.fail("commit_status", status=429, times=1)
    with pytest.raises(GitHubError) as caught:
        await status(client)
    assert caught.value.retry_after == DEFAULT_WAIT
    clock.advance(59)
    with pytest.raises(GitHubError, match="GitHub asked us to wait; 1 s to go"):
        await status(client)
    clock.advance(1)
    await status(client)
    assert statuses_sent(github) == 2
