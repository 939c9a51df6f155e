"""A GitHub App client on the fake GitHub, and the names the client tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from app.github.api import GitHubApi
from app.github.client import GitHubAppClient
from app.settings_parts import GitHubSettings, Secret
from tests.support.github_fake import APP_ID, WEBHOOK_SECRET, FakeGitHubApi
from tests.support.github_shapes import app_private_key

REPO = "octo-org/web"
SHA = "a" * 40
INSTALLATION = 42
MARKER = "<!-- scalemesh:preview -->"
PREVIEW = "Preview \N{EN DASH} web"


def app_settings() -> GitHubSettings:
    return GitHubSettings(
        app_id=APP_ID, private_key=Secret(app_private_key()), webhook_secret=Secret(WEBHOOK_SECRET)
    )


@pytest.fixture
def github() -> Iterator[FakeGitHubApi]:
    with FakeGitHubApi() as fake:
        yield fake


@pytest.fixture
async def client(github: FakeGitHubApi) -> AsyncIterator[GitHubAppClient]:
    client = GitHubAppClient(app_settings(), github.base_url)
    yield client
    await client.aclose()


async def status(client: GitHubApi, state: str = "pending", **overrides: Any) -> None:
    repository = overrides.pop("repository", REPO)
    fields: dict[str, Any] = {
        "state": state,
        "context": "scalemesh/web",
        "description": "Building…",
        "target_url": "https://scalemesh.example/deployments/7",
    }
    fields.update(overrides)
    await client.set_commit_status(INSTALLATION, repository, SHA, **fields)


def mint_path(installation_id: int = INSTALLATION) -> str:
    return f"/app/installations/{installation_id}/access_tokens"
