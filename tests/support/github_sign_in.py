"""Signing in with GitHub in tests: the API wired to `FakeGitHubUsers`, and the web flow's steps.

`oauth_settings` and `oauth_client` are fixtures (bind them in a test module by name, as
`tests.support.cli_client` does); `begin`, `github_answers` and `callback` are the browser's
three steps, made one at a time so a test can change any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest

from app.asgi import create_app
from app.auth.routes import STATE_COOKIE
from app.github.oauth_client import GitHubUsersClient
from app.settings import Settings
from tests.support.api import Client, OfflineResolver
from tests.support.github_users_fake import (
    API_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    WEB_URL,
    FakeGitHubUsers,
    split_location,
)

SESSION_COOKIE = "scalemesh_session"
CALLBACK = "http://localhost:8000/auth/github/callback"
"""The redirect URI for the default `SCALEMESH_PUBLIC_URL`."""


def oauth_environ(web_url: str = WEB_URL, api_url: str = API_URL) -> dict[str, str]:
    return {
        "SCALEMESH_GITHUB_CLIENT_ID": CLIENT_ID,
        "SCALEMESH_GITHUB_CLIENT_SECRET": CLIENT_SECRET,
        "SCALEMESH_GITHUB_WEB_URL": web_url,
        "SCALEMESH_GITHUB_API_URL": api_url,
    }


@pytest.fixture
def github_users() -> FakeGitHubUsers:
    fake = FakeGitHubUsers()
    fake.add_user("octo")
    fake.browser_user = "octo"
    return fake


@pytest.fixture
def oauth_settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(SCALEMESH_DATABASE_URL=database_url, **oauth_environ())


@pytest.fixture
def oauth_client(oauth_settings: Settings, github_users: FakeGitHubUsers) -> Iterator[Client]:
    """The API with "Sign in with GitHub" configured, GitHub being `github_users`."""
    assert oauth_settings.oauth is not None
    api = GitHubUsersClient(
        oauth_settings.oauth, web_url=WEB_URL, api_url=API_URL, transport=github_users.transport
    )
    app = create_app(
        oauth_settings, ref_resolver=OfflineResolver(), reconcile=False, github_users=api
    )
    with Client(app) as test_client:
        yield test_client


@dataclass(frozen=True)
class Begun:
    """`GET /auth/github`'s answer: GitHub's authorize URL and the state cookie it set."""

    response: httpx.Response
    state: str
    authorize: str
    query: dict[str, str]


def begin(client: Client, next_path: str | None = None) -> Begun:
    """The browser follows the "Sign in with GitHub" link."""
    url = "/auth/github" if next_path is None else f"/auth/github?{urlencode({'next': next_path})}"
    response = client.get(url, follow_redirects=False)
    assert response.status_code == 302, response.text
    target, query = split_location(response)
    return Begun(response, response.cookies[STATE_COOKIE], target, query)


def github_answers(fake: FakeGitHubUsers, begun: Begun) -> str:
    """GitHub's authorize page approves and sends the browser back: the callback's query."""
    answer = fake.handle(httpx.Request("GET", begun.response.headers["location"]))
    assert answer.status_code == 302, answer.text
    target, query = split_location(answer)
    assert target == CALLBACK
    return urlencode(query)


def callback(client: Client, query: str, cookie_state: str | None) -> httpx.Response:
    """The browser lands on the callback, sending `cookie_state` as its state cookie (if any)
    and no other cookie."""
    client.cookies.clear()
    headers = {"Accept": "text/html"}
    if cookie_state is not None:
        headers["Cookie"] = f"{STATE_COOKIE}={cookie_state}"
    return client.get(f"/auth/github/callback?{query}", headers=headers, follow_redirects=False)


def sign_in(client: Client, fake: FakeGitHubUsers, next_path: str | None = None) -> httpx.Response:
    """The whole web flow for `fake.browser_user`; the callback's answer."""
    begun = begin(client, next_path)
    return callback(client, github_answers(fake, begun), begun.state)


def session_of(response: httpx.Response) -> str:
    """The session token a sign-in's answer set as its cookie."""
    token = response.cookies.get(SESSION_COOKIE)
    assert token, response.headers.get_list("set-cookie")
    return token
