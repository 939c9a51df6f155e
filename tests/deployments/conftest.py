"""The API with a scripted runner and no loop of its own, and Ada's project `web`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.asgi import create_app
from app.settings import Settings
from tests.support.api import Client, bearer, sign_up
from tests.support.deployments import FakeResolver, FakeRunner


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def client(settings: Settings, runner: FakeRunner) -> Iterator[Client]:
    app = create_app(settings, runner=runner, ref_resolver=FakeResolver(), reconcile=False)
    with Client(app) as test_client:
        yield test_client


@pytest.fixture
def token(client: Client) -> str:
    token = sign_up(client)
    response = client.post(
        "/project",
        json={"name": "web", "repo": "octo/web", "env": {"API_KEY": "k-123456"}},
        headers=bearer(token),
    )
    assert response.status_code == 201
    return token
