"""`GitHubUsersClient` against the fake GitHub: the OAuth flows, and calls made as a user."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import pytest

from app.github.api import GitHubError
from app.github.oauth_api import (
    DevicePending,
    OAuthRefused,
    Permission,
    RepositoryAccess,
    TokenRejected,
    UserToken,
)
from app.github.oauth_client import GitHubUsersClient
from app.settings_parts import OAuthSettings, Secret
from tests.support.github_users_fake import (
    API_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    WEB_URL,
    FakeGitHubUsers,
    split_location,
)

T = TypeVar("T")
CALLBACK = "http://localhost:8000/auth/github/callback"


def run(make: Callable[[GitHubUsersClient], Awaitable[T]], fake: FakeGitHubUsers) -> T:
    async def scenario() -> T:
        client = GitHubUsersClient(
            OAuthSettings(CLIENT_ID, Secret(CLIENT_SECRET)),
            web_url=WEB_URL,
            api_url=API_URL,
            transport=fake.transport,
        )
        try:
            return await make(client)
        finally:
            await client.aclose()

    return asyncio.run(scenario())


def approved_code(fake: FakeGitHubUsers, login: str) -> str:
    fake.browser_user = login
    client = GitHubUsersClient(
        OAuthSettings(CLIENT_ID, Secret(CLIENT_SECRET)), web_url=WEB_URL, api_url=API_URL
    )
    url = client.authorize_url("the-state", CALLBACK)
    answer = fake.handle(httpx.Request("GET", url))
    target, query = split_location(answer)
    assert (target, query["state"]) == (CALLBACK, "the-state")
    return query["code"]


def test_the_web_flow_code_becomes_a_token_for_the_right_user_and_only_once() -> None:
    fake = FakeGitHubUsers()
    octo = fake.add_user("octo")
    code = approved_code(fake, "octo")

    async def scenario(client: GitHubUsersClient) -> tuple[UserToken, int, str]:
        token = await client.exchange_code(code, CALLBACK)
        user = await client.user(token.token)
        with pytest.raises(OAuthRefused) as again:
            await client.exchange_code(code, CALLBACK)
        return token, user.id, again.value.reason

    token, user_id, reason = run(scenario, fake)

    assert user_id == octo.id
    assert token.expires_at is not None
    assert token.refresh_token is not None
    assert reason == "bad_verification_code"
    exchange = fake.calls_to("POST", "/login/oauth/access_token")[0]
    assert exchange.body["client_secret"] == CLIENT_SECRET
    assert exchange.body["redirect_uri"] == CALLBACK


def test_a_refresh_token_gives_a_new_token_once_and_a_revoked_token_is_rejected() -> None:
    fake = FakeGitHubUsers(token_ttl=timedelta(hours=8))
    fake.add_user("octo")
    code = approved_code(fake, "octo")

    async def scenario(client: GitHubUsersClient) -> tuple[str, str, str]:
        first = await client.exchange_code(code, CALLBACK)
        assert first.refresh_token is not None
        fake.expire_tokens()
        with pytest.raises(TokenRejected):
            await client.user(first.token)
        second = await client.refresh(first.refresh_token)
        with pytest.raises(OAuthRefused) as reused:
            await client.refresh(first.refresh_token)
        login = (await client.user(second.token)).login
        fake.revoke("octo")
        with pytest.raises(TokenRejected) as revoked:
            await client.user(second.token)
        return login, reused.value.reason, str(revoked.value.status)

    assert run(scenario, fake) == ("octo", "bad_refresh_token", "401")


def test_the_device_flow_is_pending_until_the_user_approves() -> None:
    fake = FakeGitHubUsers(device_interval=3)
    fake.add_user("octo")

    async def scenario(client: GitHubUsersClient) -> tuple[object, str, str]:
        device = await client.start_device()
        pending = await client.poll_device(device.device_code)
        fake.authorize_device(device.user_code, "octo")
        token = await client.poll_device(device.device_code)
        assert isinstance(token, UserToken)
        with pytest.raises(OAuthRefused) as used:
            await client.poll_device(device.device_code)
        return pending, (await client.user(token.token)).login, used.value.reason

    pending, login, reason = run(scenario, fake)
    assert pending == DevicePending(interval=3)
    assert (login, reason) == ("octo", "expired_token")


def test_a_denied_device_sign_in_is_refused() -> None:
    fake = FakeGitHubUsers()
    fake.add_user("octo")

    async def scenario(client: GitHubUsersClient) -> str:
        device = await client.start_device()
        fake.authorize_device(device.user_code, "octo", deny=True)
        with pytest.raises(OAuthRefused) as denied:
            await client.poll_device(device.device_code)
        return denied.value.reason

    assert run(scenario, fake) == "access_denied"


@pytest.mark.parametrize(
    ("permission", "private", "seen"),
    [
        (Permission.ADMIN, True, Permission.ADMIN),
        (Permission.MAINTAIN, True, Permission.MAINTAIN),
        (Permission.PUSH, True, Permission.PUSH),
        (Permission.PULL, True, Permission.PULL),
        (None, False, Permission.PULL),
        (None, True, None),
    ],
)
def test_a_repository_is_read_with_the_users_permission_by_id_and_by_name(
    permission: Permission | None, private: bool, seen: Permission | None
) -> None:
    fake = FakeGitHubUsers()
    fake.add_user("octo")
    repo = fake.add_repo("acme/site", private=private)
    fake.grant("octo", "acme/site", permission)
    token = fake.token_for("octo")

    async def scenario(client: GitHubUsersClient) -> list[RepositoryAccess | None]:
        return [
            await client.repository(token, repo.id),
            await client.repository(token, "ACME/Site"),
        ]

    found = run(scenario, fake)
    expected = None if seen is None else RepositoryAccess(repo.id, "acme/site", private, seen)
    assert found == [expected, expected]


def test_the_client_names_its_hosts_and_never_its_secret() -> None:
    client = GitHubUsersClient(
        OAuthSettings(CLIENT_ID, Secret(CLIENT_SECRET)), web_url=WEB_URL + "/", api_url=API_URL
    )

    assert repr(client) == (f"GitHubUsersClient(web_url={WEB_URL!r}, api_url={API_URL!r})")
    assert CLIENT_SECRET not in repr(client)


def test_a_pending_device_answer_without_an_interval_waits_the_slow_down_step() -> None:
    fake = FakeGitHubUsers(device_interval=1)
    fake.answer_with("POST", "/login/oauth/access_token", {"error": "slow_down"})

    async def scenario(client: GitHubUsersClient) -> object:
        return await client.poll_device("a-device-code")

    assert run(scenario, fake) == DevicePending(interval=5)
    (poll,) = fake.calls_to("POST", "/login/oauth/access_token")
    assert poll.body["device_code"] == "a-device-code"


ODD_ANSWERS = [
    pytest.param(
        ("POST", "/login/device/code", {"user_code": "1234-5678", "interval": 5}),
        lambda client: client.start_device(),
        "start a device sign-in: GitHub's answer lacks the device code",
        id="device-code-missing",
    ),
    pytest.param(
        (
            "POST",
            "/login/device/code",
            {
                "device_code": "d",
                "user_code": "u",
                "verification_uri": "v",
                "expires_in": "soon",
                "interval": 5,
            },
        ),
        lambda client: client.start_device(),
        "start a device sign-in: GitHub's answer lacks the device code",
        id="device-expiry-not-a-number",
    ),
    pytest.param(
        ("POST", "/login/oauth/access_token", ["not", "an", "object"]),
        lambda client: client.refresh("ghr_refresh"),
        "refresh a user token: GitHub answered with something other than an object",
        id="token-answer-a-list",
    ),
    pytest.param(
        ("POST", "/login/oauth/access_token", {"token_type": "bearer"}),
        lambda client: client.exchange_code("a-code", CALLBACK),
        "GitHub's token answer has no access_token",
        id="token-answer-without-token",
    ),
    pytest.param(
        ("GET", "/user", {"message": "Not Found"}, 404),
        lambda client: client.user("ghu_token"),
        "read the signed-in GitHub user: GitHub answered 404",
        id="user-404",
    ),
    pytest.param(
        ("GET", "/user", {"login": "octo", "id": "5001"}),
        lambda client: client.user("ghu_token"),
        "read the signed-in GitHub user: GitHub's answer lacks the user's id or login",
        id="user-id-not-a-number",
    ),
    pytest.param(
        ("GET", "/repositories/42", {"id": 42, "permissions": {"admin": True}}),
        lambda client: client.repository("ghu_token", 42),
        "read repository 42 as the user: GitHub's answer lacks the repository's id or name",
        id="repository-without-name",
    ),
]


@pytest.mark.parametrize(("canned", "call", "message"), ODD_ANSWERS)
def test_an_answer_github_should_not_give_is_an_error_naming_what_was_asked(
    canned: tuple[Any, ...],
    call: Callable[[GitHubUsersClient], Awaitable[object]],
    message: str,
) -> None:
    fake = FakeGitHubUsers()
    fake.answer_with(*canned)

    async def scenario(client: GitHubUsersClient) -> GitHubError:
        with pytest.raises(GitHubError) as failed:
            await call(client)
        return failed.value

    error = run(scenario, fake)

    assert str(error) == message
    assert not isinstance(error, (OAuthRefused, TokenRejected))
    assert len(fake.calls_to(*canned[:2])) == 1
