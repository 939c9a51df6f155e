"""A build in progress as a builder sees it: the API with a scripted runner, a deployment being
built, its bootstrap token, and the calls a builder makes with that token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from app.asgi import create_app
from app.builds.grants import UploadGrants
from app.builds.tokens import BuildTokens
from app.settings import Settings
from builder.spec import StorageCredentials
from tests.support.api import Client, bearer, sign_up
from tests.support.deploying import deploy
from tests.support.deployments import FakeResolver, FakeRunner, tick

TTL = timedelta(minutes=16)
SECRET_VALUE = "k-1234567890"
"""The project's env var value: in the spec, never in the ECS overrides or a log."""
CREDENTIALS = StorageCredentials(
    access_key_id="ASIAUPLOAD", secret_access_key="upload-secret", session_token="upload-session"
)


@dataclass
class Builds:
    """The API, Ada's account, and a way to put deployments in `building`."""

    client: Client
    runner: FakeRunner
    user_token: str

    def building(self, ref: str = "main") -> str:
        """A new deployment of `web`, started by the reconcile loop (its runner is a fake).

        A later one of the same branch supersedes it: give another `ref` (`feature/login`,
        `v1.0`) to keep both building."""
        deployment = deploy(self.client, self.user_token, ref=ref)
        tick(self.client)
        return str(deployment["id"])

    def token_for(self, deployment_id: str, ttl: timedelta = TTL) -> str:
        """What the ECS runner would put in the task's overrides."""
        return self.client.run(lambda: BuildTokens().issue(deployment_id, ttl))

    def fetch_spec(self, deployment_id: str, token: str) -> httpx.Response:
        return self.client.post(f"/internal/builds/{deployment_id}/spec", headers=bearer(token))

    def send(self, deployment_id: str, token: str, *events: dict[str, Any]) -> httpx.Response:
        body = "".join(json.dumps(event) + "\n" for event in events)
        return self.send_raw(deployment_id, token, body.encode())

    def send_raw(self, deployment_id: str, token: str, body: bytes) -> httpx.Response:
        return self.client.post(
            f"/internal/builds/{deployment_id}/events",
            content=body,
            headers={**bearer(token), "Content-Type": "application/x-ndjson"},
        )

    def shown(self, deployment_id: str) -> dict[str, Any]:
        """The deployment as its owner sees it through the API."""
        response = self.client.get(f"/deployments/{deployment_id}", headers=bearer(self.user_token))
        assert response.status_code == 200, response.text
        shown: dict[str, Any] = response.json()
        return shown

    def log(self, deployment_id: str) -> list[dict[str, Any]]:
        bus = self.client.app.state.services.bus
        return [dict(event) for event in self.client.run(lambda: bus.read(deployment_id))]


@dataclass
class ScriptedGrants:
    """Upload grants that fail while `failures` is above 0, then hand out `CREDENTIALS`."""

    failures: int = 0
    granted: list[tuple[int, str, int]] | None = None
    cache_branches: list[str | None] | None = None
    cache_generations: list[str] | None = None

    async def grant(
        self,
        project_id: int,
        deployment_id: str,
        seconds: int,
        cache_branch: str | None = None,
        cache_generation: str = "",
    ) -> StorageCredentials | None:
        from app.builds.grants import UploadGrantError

        if self.failures:
            self.failures -= 1
            raise UploadGrantError("STS would not grant upload credentials: Throttling: slow")
        self.granted = [*(self.granted or []), (project_id, deployment_id, seconds)]
        self.cache_branches = [*(self.cache_branches or []), cache_branch]
        self.cache_generations = [*(self.cache_generations or []), cache_generation]
        return CREDENTIALS

    async def aclose(self) -> None:
        return None


def open_builds(settings: Settings, grants: UploadGrants | None = None) -> Iterator[Builds]:
    """Yield the API (no loop of its own) with Ada signed up and her project `web`."""
    runner = FakeRunner()
    app = create_app(
        settings,
        runner=runner,
        ref_resolver=FakeResolver(),
        reconcile=False,
        upload_grants=grants,
    )
    with Client(app) as client:
        user_token = sign_up(client)
        created = client.post(
            "/project",
            json={"name": "web", "repo": "octo/web", "env": {"API_KEY": SECRET_VALUE}},
            headers=bearer(user_token),
        )
        assert created.status_code == 201, created.text
        yield Builds(client, runner, user_token)
