"""Two sign-ins of one GitHub user at once: the account made second gives way to the first.

The race is staged, not timed: `StaleTokens` answers "no account is linked to this GitHub user"
as a sign-in that read the table before the other one stored its link would have.
"""

from __future__ import annotations

import sqlite3
from typing import Any, TypeVar

import asyncpg
import pytest

from app import database
from app.auth.service import GitHubSignIn
from app.auth.user_tokens import LinkedAccount, UserTokens
from app.github.oauth_api import GitHubUser, UserToken
from app.settings import Settings
from app.tables import GitHubAccount, User
from tests.support import github_sign_in
from tests.support.api import Client
from tests.support.github_sign_in import sign_in
from tests.support.github_users_fake import FakeGitHubUsers

github_users = github_sign_in.github_users
oauth_settings = github_sign_in.oauth_settings
oauth_client = github_sign_in.oauth_client
T = TypeVar("T", bound=UserTokens)
UNIQUE_VIOLATIONS = (asyncpg.exceptions.UniqueViolationError, sqlite3.IntegrityError)


class StaleTokens(UserTokens):
    """`UserTokens` whose first `stale_reads` lookups by GitHub user find no account."""

    stale_reads = 0

    async def account_of_github_user(self, github_id: int) -> LinkedAccount | None:
        if self.stale_reads > 0:
            self.stale_reads -= 1
            return None
        return await super().account_of_github_user(github_id)


class FailingSave(UserTokens):
    """`UserTokens` whose `save` fails as a database that went away would."""

    async def save(self, user_id: int, user: GitHubUser, token: UserToken) -> None:
        raise ConnectionError("the database went away")


def sign_in_with(client: Client, kind: type[T], stale_reads: int = 0) -> tuple[GitHubSignIn, T]:
    """The API's `GitHubSignIn`, keeping GitHub tokens with a `kind` of `UserTokens`."""
    current: GitHubSignIn = client.app.state.services.github_sign_in
    settings: Settings = client.app.state.services.dashboard.settings
    tokens = kind(settings.require_secret_keys(), current._github)
    if isinstance(tokens, StaleTokens):
        tokens.stale_reads = stale_reads
    service = GitHubSignIn(settings, current._engine, current._users, tokens, current._github)
    return service, tokens


def token(fake: FakeGitHubUsers, login: str) -> UserToken:
    return UserToken(fake.token_for(login), None)


def rows(client: Client) -> tuple[list[Any], list[Any]]:
    users = client.run(lambda: User.select(User.id).order_by(User.id).output(as_list=True))
    links = client.run(
        lambda: GitHubAccount.select(GitHubAccount.user, GitHubAccount.github_id).output(
            as_list=False
        )
    )
    return users, links


def test_the_account_made_second_is_dropped_and_the_first_signed_in_to(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    sign_in(oauth_client, github_users)
    (first,), links = rows(oauth_client)
    octo = github_users.user("octo")
    service, tokens = sign_in_with(oauth_client, StaleTokens, stale_reads=1)
    second_token = token(github_users, "octo")

    signed_in = oauth_client.run(lambda: service._account_for(second_token))

    assert signed_in == first
    assert rows(oauth_client) == ([first], [{"user": first, "github_id": octo.id}])
    assert links == [{"user": first, "github_id": octo.id}]
    # The first account now keeps this sign-in's token.
    assert oauth_client.run(lambda: tokens.token_for(first)) == second_token.token


def test_when_the_first_account_is_gone_too_the_clash_is_not_hidden(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    sign_in(oauth_client, github_users)
    before = rows(oauth_client)
    service, _ = sign_in_with(oauth_client, StaleTokens, stale_reads=2)

    with pytest.raises(UNIQUE_VIOLATIONS) as failed:
        oauth_client.run(lambda: service._account_for(token(github_users, "octo")))

    assert database.is_unique_violation(failed.value)
    assert rows(oauth_client) == before  # the account made for this sign-in is not left behind


def test_a_failure_to_save_the_token_is_not_taken_for_the_race(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    service, _ = sign_in_with(oauth_client, FailingSave)

    with pytest.raises(ConnectionError, match="the database went away"):
        oauth_client.run(lambda: service._account_for(token(github_users, "octo")))

    users, links = rows(oauth_client)
    assert links == []
    assert len(users) == 1  # made before the save failed, kept: nothing clashed
