"""The API with the GitHub App configured: a recording fake of GitHub behind the real client,
a scripted runner, and Ada's project `web` on an installed repository."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app.asgi import create_app
from app.github.client import GitHubAppClient
from app.settings import Settings
from tests.support.api import Client, bearer, sign_up
from tests.support.binding import bind
from tests.support.clock import FrozenClock
from tests.support.deployments import FakeResolver, FakeRunner
from tests.support.github_app import App
from tests.support.github_fake import FakeGitHubApi
from tests.support.webhooks import REPO, REPO_ID, payload


@pytest.fixture
def github() -> Iterator[FakeGitHubApi]:
    with FakeGitHubApi() as fake:
        yield fake


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], database_url: str, github: FakeGitHubApi
) -> Settings:
    return make_settings(SCALEMESH_DATABASE_URL=database_url, **github.environ())


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def clock() -> FrozenClock:
    """The time the GitHub client's waits and the reporter's retries go by; still until moved."""
    return FrozenClock()


@pytest.fixture
def client(
    settings: Settings, runner: FakeRunner, github: FakeGitHubApi, clock: FrozenClock
) -> Iterator[Client]:
    assert settings.github is not None
    api = GitHubAppClient(settings.github, github.base_url, transport=github.transport, clock=clock)
    app = create_app(
        settings, runner=runner, ref_resolver=FakeResolver(), reconcile=False, github=api
    )
    with Client(app) as test_client:
        test_client.app.state.services.reporter.clock = clock
        yield test_client


@pytest.fixture
def app(client: Client, runner: FakeRunner, github: FakeGitHubApi) -> App:
    return App(client, runner, github)


@pytest.fixture
def token(app: App) -> str:
    """Ada's account with project `web` bound to the repository, and the App installed there."""
    token = sign_up(app.client)
    response = app.client.post(
        "/project",
        json={
            "name": "web",
            "repo": REPO,
            "production_branch": "main",
            "env": {"API_KEY": "k-123456"},
        },
        headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    bind(app.client, "web", REPO_ID)
    assert app.deliver("installation", payload("installation.created")).status_code == 202
    return token
