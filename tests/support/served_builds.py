"""The API served over a real socket with a scripted runner, for the builder's HTTP client: a
deployment being built, its bootstrap token, and the log the API kept."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from app.asgi import create_app
from app.builds.tokens import BuildTokens
from app.settings import Settings
from builder.events import LogEvent
from tests.support.api import bearer
from tests.support.builds import SECRET_VALUE, TTL
from tests.support.deployments import FakeResolver, FakeRunner
from tests.support.servers import Serving, uvicorn_in_thread


@dataclass
class ServedBuilds:
    serving: Serving
    services: Any
    runner: FakeRunner
    http: httpx.Client
    user_token: str

    @property
    def url(self) -> str:
        return self.serving.url

    def building(self, ref: str = "main") -> tuple[str, str]:
        """A deployment in `building`, and the token its builder would hold."""
        response = self.http.post(
            "/deploy", json={"project": "web", "ref": ref}, headers=bearer(self.user_token)
        )
        assert response.status_code == 202, response.text
        deployment_id = str(response.json()["id"])
        self.serving.call(self.services.reconciler.tick)
        token = self.serving.call(lambda: BuildTokens().issue(deployment_id, TTL))
        return deployment_id, token

    def log(self, deployment_id: str) -> list[LogEvent]:
        events: list[LogEvent] = self.serving.call(lambda: self.services.bus.read(deployment_id))
        return events

    def revoke(self, deployment_id: str) -> None:
        self.serving.call(lambda: BuildTokens().revoke(deployment_id))


@contextlib.contextmanager
def served_builds(settings: Settings) -> Iterator[ServedBuilds]:
    """The API on a socket, with Ada signed up and her project `web` (one env var)."""
    runner = FakeRunner()
    app = create_app(settings, runner=runner, ref_resolver=FakeResolver(), reconcile=False)
    with uvicorn_in_thread(app) as serving, httpx.Client(base_url=serving.url) as http:
        account = {"email": "ada@example.com", "password": "correct horse battery"}
        assert http.post("/user/signup", json=account).status_code == 201
        user_token = http.post("/user/login", json=account).json()["token"]
        http.cookies.clear()
        created = http.post(
            "/project",
            json={"name": "web", "repo": "octo/web", "env": {"API_KEY": SECRET_VALUE}},
            headers=bearer(user_token),
        )
        assert created.status_code == 201, created.text
        yield ServedBuilds(serving, app.state.services, runner, http, user_token)
