"""GitHub user tokens: sealed to their account, refreshed before they expire, once per race."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.auth import user_tokens
from app.auth.user_tokens import LinkedAccount, TokenSealer, UserTokens
from app.github.oauth_api import GitHubUser, UserToken
from app.github.oauth_client import GitHubUsersClient
from app.settings import Settings
from app.settings_parts import OAuthSettings, Secret
from app.tables import GitHubAccount, User
from tests.support.api import Client, sign_up
from tests.support.github_users_fake import (
    API_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    WEB_URL,
    FakeGitHubUsers,
)


@pytest.fixture
def user_id(client: Client) -> int:
    sign_up(client)
    ids = client.run(lambda: User.select(User.id).output(as_list=True))
    return int(ids[0])


def tokens_for(settings: Settings, fake: FakeGitHubUsers) -> UserTokens:
    github = GitHubUsersClient(
        OAuthSettings(CLIENT_ID, Secret(CLIENT_SECRET)),
        web_url=WEB_URL,
        api_url=API_URL,
        transport=fake.transport,
    )
    return UserTokens(settings.require_secret_keys(), github)


def issued(fake: FakeGitHubUsers, login: str) -> UserToken:
    answer = fake._issue(fake.user(login).id)
    return UserToken(
        token=answer["access_token"],
        expires_at=datetime.now(UTC) + timedelta(hours=8),
        refresh_token=answer.get("refresh_token"),
        refresh_expires_at=datetime.now(UTC) + timedelta(days=180),
    )


def test_a_saved_token_is_sealed_to_its_account_and_read_back(
    client: Client, settings: Settings, user_id: int
) -> None:
    fake = FakeGitHubUsers()
    octo = fake.add_user("octo")
    tokens = tokens_for(settings, fake)
    token = issued(fake, "octo")

    client.run(lambda: tokens.save(user_id, GitHubUser(octo.id, "octo"), token))

    assert client.run(lambda: tokens.token_for(user_id)) == token.token
    assert client.run(lambda: tokens.account_of_github_user(octo.id)) == LinkedAccount(
        user_id, octo.id, "octo"
    )
    sealed = client.run(lambda: GitHubAccount.select(GitHubAccount.token_sealed).first())
    blob = bytes(sealed["token_sealed"]) if sealed else b""
    assert token.token.encode() not in blob
    sealer = TokenSealer(settings.require_secret_keys())
    assert sealer.open(user_id, "token", blob) == token.token
    assert sealer.open(user_id + 1, "token", blob) is None
    assert sealer.open(user_id, "refresh", blob) is None
    assert sealer.open(user_id, "token", b"\x00" + blob[1:]) is None  # another seal version
    assert client.run(lambda: tokens.token_for(user_id + 1)) is None


def test_an_expiring_token_is_refreshed_and_the_new_one_stored(
    client: Client, settings: Settings, user_id: int
) -> None:
    fake = FakeGitHubUsers()
    octo = fake.add_user("octo")
    tokens = tokens_for(settings, fake)
    old = issued(fake, "octo")
    expiring = UserToken(
        old.token, datetime.now(UTC) + timedelta(minutes=1), old.refresh_token, None
    )
    client.run(lambda: tokens.save(user_id, GitHubUser(octo.id, "octo"), expiring))

    fresh = client.run(lambda: tokens.token_for(user_id))

    assert fresh not in (None, old.token)
    assert fake.tokens[str(fresh)].user_id == octo.id
    assert len(fake.calls_to("POST", "/login/oauth/access_token")) == 1
    # Stored: the next read needs no refresh.
    assert client.run(lambda: tokens.token_for(user_id)) == fresh
    assert len(fake.calls_to("POST", "/login/oauth/access_token")) == 1


def test_a_refresh_lost_to_another_replica_takes_its_token_and_a_dead_one_gives_none(
    client: Client, settings: Settings, user_id: int
) -> None:
    fake = FakeGitHubUsers()
    octo = fake.add_user("octo")
    tokens = tokens_for(settings, fake)
    old = issued(fake, "octo")
    expired = UserToken(old.token, datetime.now(UTC) - timedelta(minutes=1), old.refresh_token)
    client.run(lambda: tokens.save(user_id, GitHubUser(octo.id, "octo"), expired))
    # Another replica refreshed first: GitHub's refresh token is spent, its token stored.
    other = issued(fake, "octo")
    fake.refresh_tokens.pop(str(old.refresh_token))
    client.run(lambda: tokens.save(user_id, GitHubUser(octo.id, "octo"), other))
    stale_reader = UserTokens(settings.require_secret_keys(), tokens._github)

    async def race() -> str | None:
        # This replica read the old row before the other one stored its token.
        row = await GitHubAccount.select(*user_tokens._Stored.COLUMNS).first()
        assert row is not None
        old_row = user_tokens._Stored.of(
            row
            | {
                "token_sealed": TokenSealer(settings.require_secret_keys()).seal(
                    user_id, "token", old.token
                ),
                "refresh_sealed": TokenSealer(settings.require_secret_keys()).seal(
                    user_id, "refresh", str(old.refresh_token)
                ),
                "token_expires_at": expired.expires_at,
            }
        )
        return await stale_reader._refreshed(old_row, datetime.now(UTC))

    assert client.run(race) == other.token

    fake.revoke("octo")
    client.run(lambda: tokens.save(user_id, GitHubUser(octo.id, "octo"), expired))
    assert client.run(lambda: tokens.token_for(user_id)) is None


@pytest.mark.parametrize(
    ("with_github", "refresh", "refresh_expired"),
    [
        pytest.param(False, True, False, id="github-sign-in-not-configured"),
        pytest.param(True, False, False, id="no-refresh-token"),
        pytest.param(True, True, True, id="refresh-token-expired"),
    ],
)
def test_an_expired_token_that_cannot_be_refreshed_gives_none_without_asking_github(
    client: Client,
    settings: Settings,
    user_id: int,
    with_github: bool,
    refresh: bool,
    refresh_expired: bool,
) -> None:
    fake = FakeGitHubUsers()
    octo = fake.add_user("octo")
    tokens = tokens_for(settings, fake)
    old = issued(fake, "octo")
    now = datetime.now(UTC)
    expired = UserToken(
        old.token,
        now - timedelta(minutes=1),
        old.refresh_token if refresh else None,
        now - timedelta(minutes=1) if refresh_expired else now + timedelta(days=1),
    )
    client.run(lambda: tokens.save(user_id, GitHubUser(octo.id, "octo"), expired))
    reader = tokens if with_github else UserTokens(settings.require_secret_keys(), None)

    assert client.run(lambda: reader.token_for(user_id)) is None
    assert fake.calls_to("POST", "/login/oauth/access_token") == []
    assert str(old.refresh_token) in fake.refresh_tokens  # not spent
