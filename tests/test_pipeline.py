"""End to end: a real git repository, the real builder under the local runner, a real npm build.

Nothing here reaches a package registry: the sites have no dependencies and npm runs offline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.asgi import create_app
from app.settings import Settings
from app.tables import Alias
from builder.spec import MANIFEST
from tests.support.admins import sign_up_admin
from tests.support.api import Client, bearer
from tests.support.sites import NPM_OFFLINE, make_site

HANGING_BUILD = "node -e 'setTimeout(() => {}, 60000)'"


@pytest.fixture
def e2e(make_settings: Callable[..., Settings], database_url: str) -> Callable[..., Settings]:
    """Settings for a real build: a fast reconcile loop, and a PATH with node and git."""

    def make(**overrides: str) -> Settings:
        return make_settings(
            **{
                "SCALEMESH_DATABASE_URL": database_url,
                "SCALEMESH_RECONCILE_INTERVAL": "0.2",
                "SCALEMESH_BUILD_TIMEOUT": "60",
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                **overrides,
            }
        )

    return make


@pytest.fixture
def e2e_settings(e2e: Callable[..., Settings]) -> Settings:
    return e2e()


def start_build(client: Client, repo: str) -> tuple[str, str]:
    """Sign up, create a project for `repo` and deploy it; the token and the deployment id."""
    token = sign_up_admin(client)
    new_project(client, token, repo)
    started = client.post("/deploy", json={"project": "site"}, headers=bearer(token)).json()
    return token, str(started["id"])


@pytest.fixture
def client(e2e_settings: Settings) -> Iterator[Client]:
    with Client(create_app(e2e_settings)) as test_client:
        yield test_client


@pytest.fixture
def token(client: Client) -> str:
    return sign_up_admin(client)  # file:// repositories are the admin's


def new_project(client: Client, token: str, repo: str, name: str = "site", **extra: Any) -> None:
    body = {"name": name, "repo": repo, "env": {**NPM_OFFLINE, **extra.pop("env", {})}, **extra}
    response = client.post("/project", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text


def wait_until_done(client: Client, token: str, deployment_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        deployment: dict[str, Any] = client.get(
            f"/deployments/{deployment_id}", headers=bearer(token)
        ).json()
        if deployment["state"] in ("ready", "failed", "cancelled") and deployment["finished_at"]:
            return deployment
        time.sleep(0.2)
    raise AssertionError(f"deployment {deployment_id} did not finish: {deployment}")


def log_events(client: Client, token: str, deployment_id: str) -> list[dict[str, Any]]:
    response = client.get(
        f"/deployments/{deployment_id}/logs",
        headers={**bearer(token), "Accept": "application/x-ndjson"},
    )
    return [json.loads(line) for line in response.text.splitlines()]


def test_a_local_repo_deploys_with_a_real_npm_build(
    client: Client, token: str, tmp_path: Path, e2e_settings: Settings
) -> None:
    repo = make_site(tmp_path / "site")
    new_project(client, token, repo, env={"SECRET_TOKEN": "tok-very-secret"})

    started = client.post("/deploy", json={"project": "site"}, headers=bearer(token))
    assert started.status_code == 202
    deployment = wait_until_done(client, token, started.json()["id"])

    assert deployment["state"] == "ready", deployment["error"]
    project_id = client.get("/projects/site", headers=bearer(token)).json()["id"]
    root = e2e_settings.storage.local_root / "__outputs" / str(project_id) / deployment["id"]
    assert (root / "index.html").read_text().startswith("<!doctype html>")
    manifest = json.loads((root / MANIFEST).read_text())
    files = manifest["files"]
    assert files["index.html"]["content_type"] == "text/html; charset=utf-8"
    assert files["style.css"]["content_type"] == "text/css; charset=utf-8"
    assert files["assets/app-1a2b3c4d.js"]["content_type"] == "text/javascript; charset=utf-8"
    assert "immutable" in files["assets/app-1a2b3c4d.js"]["cache_control"]
    assert "must-revalidate" in files["index.html"]["cache_control"]
    assert (root / "assets/app-1a2b3c4d.js.br").exists()
    assert set(manifest["steps"]) == {"clone", "detect", "install", "build", "upload"}

    events = log_events(client, token, deployment["id"])
    steps = {(e["step"], e["status"]) for e in events if e["type"] == "step"}
    for step in ("clone", "detect", "install", "build", "upload"):
        assert (step, "start") in steps
        assert (step, "end") in steps
    texts = [e.get("text", "") for e in events if e["type"] == "line"]
    assert "done" in texts
    assert any("a warning on stderr" in t for t in texts)
    assert any("building with ***" in t for t in texts)
    assert not any("tok-very-secret" in json.dumps(e) for e in events)
    assert events[-1]["type"] == "result"
    assert events[-1]["state"] == "ready"
    hostnames = client.run(lambda: Alias.select(Alias.hostname))
    assert {row["hostname"] for row in hostnames} >= {"site", "site-git-main"}


def test_a_failing_build_uploads_nothing_and_says_why(
    client: Client, token: str, tmp_path: Path, e2e_settings: Settings
) -> None:
    repo = make_site(tmp_path / "site", build_script="node -e 'process.exit(3)'")
    new_project(client, token, repo)

    started = client.post("/deploy", json={"project": "site"}, headers=bearer(token)).json()
    deployment = wait_until_done(client, token, started["id"])

    assert deployment["state"] == "failed"
    assert "build" in deployment["error"]
    outputs = e2e_settings.storage.local_root / "__outputs"
    assert not outputs.exists() or not any(outputs.rglob("*.html"))
    assert client.run(lambda: Alias.count()) == 0


@pytest.mark.parametrize(
    ("extra", "files", "fragment"),
    [
        ({"output_directory": "public"}, {}, "public"),
        ({}, {"bun__lockb": "binary"}, "bun"),
    ],
    ids=["missing-output-directory", "unsupported-package-manager"],
)
def test_build_setup_problems_are_explained(
    client: Client,
    token: str,
    tmp_path: Path,
    extra: dict[str, Any],
    files: dict[str, str],
    fragment: str,
) -> None:
    repo = make_site(tmp_path / "site", npm_lock="bun__lockb" not in files, **files)
    new_project(client, token, repo, **extra)

    started = client.post("/deploy", json={"project": "site"}, headers=bearer(token)).json()
    deployment = wait_until_done(client, token, started["id"])

    assert deployment["state"] == "failed"
    assert fragment in deployment["error"]


def test_a_build_past_the_timeout_is_killed(e2e: Callable[..., Settings], tmp_path: Path) -> None:
    repo = make_site(tmp_path / "site", build_script=HANGING_BUILD)
    with Client(create_app(e2e(SCALEMESH_BUILD_TIMEOUT="3"))) as client:
        token, deployment_id = start_build(client, repo)
        deployment = wait_until_done(client, token, deployment_id)

    assert deployment["state"] == "failed"
    assert "timed out after 3 s" in deployment["error"]


def test_a_restart_mid_build_builds_it_again_then_gives_up(
    e2e: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = e2e(SCALEMESH_BUILD_ATTEMPTS="2")
    repo = make_site(tmp_path / "site", build_script=HANGING_BUILD)

    def building(client: Client, token: str, deployment_id: str, attempt: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            events = log_events(client, token, deployment_id)
            builds = [e for e in events if e.get("step") == "build" and e["type"] == "step"]
            if len(builds) >= attempt:
                return
            time.sleep(0.2)
        raise AssertionError(f"build {attempt} did not start: {events}")

    def restarted() -> tuple[Client, str]:
        client = Client(create_app(settings))
        client.__enter__()
        client.cookies.clear()
        token = client.post(
            "/user/login", json={"email": "ada@example.com", "password": "correct horse battery"}
        ).json()["token"]
        return client, token

    with Client(create_app(settings)) as client:
        token, deployment_id = start_build(client, repo)
        building(client, token, deployment_id, 1)
    # The first process is gone, its build with it; a new one builds it again.
    client, token = restarted()
    try:
        # The in-memory log bus went with the first process: this log starts at the new build.
        building(client, token, deployment_id, 1)
        texts = [e.get("text", "") for e in log_events(client, token, deployment_id)]
        assert any("interrupted by a restart; building again" in text for text in texts)
    finally:
        client.__exit__(None, None, None)
    # Gone again, with no attempt left: the next process fails it instead of building again.
    client, token = restarted()
    try:
        deployment = wait_until_done(client, token, deployment_id)
    finally:
        client.__exit__(None, None, None)

    assert deployment["state"] == "failed"
    assert deployment["error"] == "interrupted by a restart; gave up after 2 attempts"
    assert deployment["error_code"] == "interrupted"
