"""GitHub users in API tests: an app whose "Sign in with GitHub" is the fake, accounts linked to
fake GitHub users (without the sign-in routes), repositories an installation covers, and the
clock of the access cache.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.asgi import create_app
from app.github.oauth_api import GitHubUser, Permission, UserToken
from app.github.oauth_client import GitHubUsersClient
from app.projects.access import Access
from app.settings import Settings
from app.settings_parts import OAuthSettings, Secret
from app.tables import Installation, Repository, User
from app.users.service import UserService
from tests.support.api import Client, OfflineResolver, bearer, sign_up
from tests.support.github_users_fake import (
    API_URL,
    CLIENT_ID,
    CLIENT_SECRET,
    WEB_URL,
    FakeGitHubUsers,
)
from tests.support.pages import HTML, csrf_of


@dataclass
class FakeClock:
    """`time.monotonic` for the access cache, moved by hand."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Outage:
    """Makes the fake GitHub answer 502 to everything while `down`."""

    fake: FakeGitHubUsers
    down: bool = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(502, json={"message": "Server Error"})
        return self.fake.handle(request)


@dataclass
class GitHubSetup:
    """The running app with the fake GitHub, and what tests do with it."""

    client: Client
    fake: FakeGitHubUsers
    clock: FakeClock
    settings: Settings
    outage: Outage
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def access(self) -> Access:
        access: Access = self.client.app.state.services.access
        return access

    def sign_in(self, login: str) -> str:
        """A session (bearer) token for an account linked to GitHub user `login`, made the way
        "Sign in with GitHub" makes one; the GitHub user is made too if the fake lacks it."""
        if login in self.tokens:
            return self.tokens[login]
        if not any(user.login == login for user in self.fake.users.values()):
            self.fake.add_user(login)
        github_user = self.fake.user(login)
        services = self.client.app.state.services
        users = UserService(self.settings)

        async def make() -> str:
            rows = await User.insert(
                User(email=f"{login.lower()}@users.example.com", password_hash="")
            ).returning(User._meta.primary_key)
            user_id = int(rows[0]["id"])
            await services.user_tokens.save(
                user_id,
                GitHubUser(github_user.id, github_user.login),
                UserToken(self.fake.token_for(login)),
            )
            token, _ = await users.start_session(user_id)
            return token

        self.tokens[login] = token = self.client.run(make)
        return token

    def link_account(self, email: str, login: str) -> None:
        """Link an existing account to GitHub user `login` (as signing in with GitHub does)."""
        github_user = self.fake.user(login)
        services = self.client.app.state.services

        async def link() -> None:
            rows = await User.select(User._meta.primary_key).where(User.email == email)
            await services.user_tokens.save(
                int(rows[0]["id"]),
                GitHubUser(github_user.id, github_user.login),
                UserToken(self.fake.token_for(login)),
            )

        self.client.run(link)

    def password_user(self, email: str) -> str:
        """A password-only account (no GitHub identity); its bearer token."""
        token = sign_up(self.client, email)
        self.tokens[email] = token
        return token

    def repo(
        self,
        full_name: str,
        *,
        covered: bool = True,
        grants: dict[str, Permission] | None = None,
        private: bool = True,
    ) -> int:
        """A repository on the fake GitHub (and, when `covered`, in an installation of the
        App), with these users' permissions; its id."""
        repo = self.fake.add_repo(full_name, private=private)
        for login, permission in (grants or {}).items():
            if not any(user.login == login for user in self.fake.users.values()):
                self.fake.add_user(login)
            self.fake.grant(login, full_name, permission)
        if covered:
            self.client.run(lambda: cover(full_name, repo.id, private=private))
        return repo.id

    def repository_calls(self) -> list[str]:
        """The paths of the repository look-ups made of the fake GitHub so far."""
        return [
            call.path
            for call in self.fake.calls
            if call.path.startswith(("/repos/", "/repositories/"))
        ]

    def csrf(self, token: str) -> str:
        """A CSRF token for forms sent with this bearer token (and the client's cookie)."""
        return csrf_of(self.client.get("/", headers={**HTML, **bearer(token)}).text)


async def cover(full_name: str, repo_id: int, *, private: bool = True) -> None:
    """An installation of the App that covers `full_name`."""
    installation_id = uuid.uuid4().int % 10**9
    rows = await Installation.insert(
        Installation(installation_id=installation_id, account_login=full_name.split("/")[0])
    ).returning(Installation._meta.primary_key)
    await Repository.insert(
        Repository(
            github_id=repo_id,
            full_name=full_name,
            clone_url=f"{WEB_URL}/{full_name}.git",
            private=private,
            installation=rows[0]["id"],
        )
    )


def github_settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    """Settings with "Sign in with GitHub" configured (the fake's client id and secret)."""
    return make_settings(
        SCALEMESH_DATABASE_URL=database_url,
        SCALEMESH_GITHUB_CLIENT_ID=CLIENT_ID,
        SCALEMESH_GITHUB_CLIENT_SECRET=CLIENT_SECRET,
    )


@contextlib.contextmanager
def github_app(settings: Settings, **create: Any) -> Iterator[GitHubSetup]:
    """The API with the fake GitHub behind "Sign in with GitHub" and a hand-moved access clock."""
    fake = FakeGitHubUsers(token_ttl=None)
    outage = Outage(fake)
    users_api = GitHubUsersClient(
        OAuthSettings(CLIENT_ID, Secret(CLIENT_SECRET)),
        web_url=WEB_URL,
        api_url=API_URL,
        transport=httpx.MockTransport(outage.handle),
    )
    app = create_app(
        settings, ref_resolver=OfflineResolver(), reconcile=False, github_users=users_api, **create
    )
    with Client(app) as client:
        clock = FakeClock()
        client.app.state.services.access.clock = clock
        yield GitHubSetup(client, fake, clock, settings, outage)
