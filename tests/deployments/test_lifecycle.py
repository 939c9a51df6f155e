"""A deployment's way from queued to live, its aliases and its log, and the states' own rules."""

from __future__ import annotations

import asyncio
import json

import pytest

from app.deployments.lifecycle import TRANSITIONS, DeploymentState
from app.deployments.transitions import move
from app.hostnames import short_id as short
from app.reporting.phases import to_github_state
from app.settings import Settings
from builder.spec import LOGS_ROOT
from tests.support.api import Client, bearer
from tests.support.deploying import aliases, deploy, fetch, ship
from tests.support.deployments import MAIN_SHA, FakeRunner, succeed, tick


def test_deploy_queues_the_production_branch(client: Client, token: str) -> None:
    deployment = deploy(client, token)

    assert deployment["state"] == "queued"
    assert deployment["target"] == "production"
    assert deployment["ref"] == "main"
    assert deployment["branch"] == "main"
    assert deployment["sha"] == MAIN_SHA
    assert deployment["project"] == "web"
    assert deployment["url"] == f"http://web-{short(deployment['id'])}.localhost:8080"
    assert deployment["aliases"] == []
    assert deployment["log_url"] == f"http://localhost:8000/deployments/{deployment['id']}"
    assert deployment["ready_at"] is None


def test_a_deployment_builds_and_goes_live(
    client: Client, token: str, runner: FakeRunner, settings: Settings
) -> None:
    deployment = deploy(client, token)

    tick(client)

    assert fetch(client, token, deployment["id"])["state"] == "building"
    spec = runner.spec_of(deployment["id"])
    assert spec.sha == MAIN_SHA
    assert spec.git_url == "https://github.com/octo/web.git"
    assert spec.env == {"API_KEY": "k-123456"}
    assert spec.storage_url == settings.storage.url
    assert spec.timeout == settings.build_timeout

    succeed(client, runner, deployment["id"])
    tick(client)

    done = fetch(client, token, deployment["id"])
    assert done["state"] == "ready"
    assert done["ready_at"] is not None
    assert done["finished_at"] is not None
    short_id = short(deployment["id"])
    assert aliases(client) == {
        f"web-{short_id}": deployment["id"],
        "web-git-main": deployment["id"],
        "web": deployment["id"],
    }
    assert sorted(done["aliases"]) == sorted(
        [
            "http://web.localhost:8080",
            "http://web-git-main.localhost:8080",
            f"http://web-{short_id}.localhost:8080",
        ]
    )


def test_the_log_ends_with_the_result_and_is_archived(
    client: Client, token: str, runner: FakeRunner
) -> None:
    deployment_id = ship(client, runner, token)["id"]

    events = client.get(
        f"/deployments/{deployment_id}/logs",
        headers={**bearer(token), "Accept": "application/x-ndjson"},
    )
    text = client.get(f"/deployments/{deployment_id}/logs", headers=bearer(token))

    lines = [json.loads(line) for line in events.text.splitlines()]
    assert events.headers["content-type"].startswith("application/x-ndjson")
    assert [event["seq"] for event in lines] == list(range(1, len(lines) + 1))
    assert lines[-1]["type"] == "result"
    assert lines[-1]["state"] == "ready"
    assert lines[-1]["url"].startswith("http://web-")
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert "built 3 pages" in text.text
    storage = client.app.state.services.reconciler.storage
    assert client.run(lambda: storage.exists(f"{LOGS_ROOT}/{deployment_id}.ndjson"))
    since = client.get(
        f"/deployments/{deployment_id}/logs?since={len(lines) - 1}",
        headers={**bearer(token), "Accept": "application/x-ndjson"},
    )
    assert [json.loads(line)["type"] for line in since.text.splitlines()] == ["result"]


def test_a_branch_deploys_as_a_preview_and_leaves_production_alone(
    client: Client, token: str, runner: FakeRunner
) -> None:
    production = ship(client, runner, token)

    preview = ship(client, runner, token, ref="feature/login")

    assert preview["target"] == "preview"
    assert preview["state"] == "ready"
    current = aliases(client)
    assert current["web"] == production["id"]
    assert current["web-git-feature-login"] == preview["id"]


def test_a_tag_gets_no_branch_alias(client: Client, token: str, runner: FakeRunner) -> None:
    tagged = ship(client, runner, token, ref="v1.0")

    assert tagged["branch"] is None
    assert tagged["target"] == "preview"
    assert set(aliases(client)) == {f"web-{short(tagged['id'])}"}


def test_list_is_newest_first_and_paginated(client: Client, token: str) -> None:
    ids = [deploy(client, token, ref="v1.0")["id"] for _ in range(3)]

    first = client.get("/projects/web/deployments?limit=2", headers=bearer(token))
    second = client.get("/projects/web/deployments?limit=2&offset=2", headers=bearer(token))

    assert [d["id"] for d in first.json()] == ids[::-1][:2]
    assert first.headers["link"] == '</projects/web/deployments?limit=2&offset=2>; rel="next"'
    assert [d["id"] for d in second.json()] == ids[:1]
    assert "link" not in second.headers


def test_final_states_have_no_way_out() -> None:
    for state in ("ready", "failed", "cancelled"):
        assert TRANSITIONS[DeploymentState(state)] == frozenset()


def test_github_sees_its_own_states() -> None:
    assert to_github_state(DeploymentState.QUEUED) == "pending"
    assert to_github_state(DeploymentState.BUILDING) == "pending"
    assert to_github_state(DeploymentState.READY) == "success"
    assert to_github_state(DeploymentState.FAILED) == "failure"
    assert to_github_state(DeploymentState.CANCELLED) == "failure"
    assert to_github_state(DeploymentState.FAILED, platform_fault=True) == "error"


def test_an_illegal_transition_is_refused() -> None:
    with pytest.raises(ValueError, match="not a deployment transition"):
        asyncio.run(move("x", [DeploymentState.READY], DeploymentState.BUILDING))


def test_a_project_without_deployments_lists_none(client: Client, token: str) -> None:
    response = client.get("/projects/web/deployments", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == []
