"""What people do to deployments: cancel, supersede by pushing, promote, roll back; and who may."""

from __future__ import annotations

import json

import pytest

from app.tables import Deployment
from tests.support.api import Client, bearer, sign_up
from tests.support.deploying import aliases, deploy, fetch, ship
from tests.support.deployments import FakeRunner, succeed, tick


def test_cancel_a_queued_deployment(client: Client, token: str, runner: FakeRunner) -> None:
    deployment = deploy(client, token)

    response = client.post(f"/deployments/{deployment['id']}/cancel", headers=bearer(token))

    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert response.json()["error_code"] == "cancelled"
    tick(client)
    assert runner.builds == {}


def test_cancel_a_running_build_stops_it(client: Client, token: str, runner: FakeRunner) -> None:
    deployment = deploy(client, token)
    tick(client)

    response = client.post(f"/deployments/{deployment['id']}/cancel", headers=bearer(token))

    assert response.json()["state"] == "cancelled"
    assert response.json()["finished_at"] is not None
    assert runner.build_of(deployment["id"]).cancelled
    log = client.get(
        f"/deployments/{deployment['id']}/logs",
        headers={**bearer(token), "Accept": "application/x-ndjson"},
    )
    result = json.loads(log.text.splitlines()[-1])
    assert (result["state"], result["error_code"]) == ("cancelled", "cancelled")


def test_a_finished_deployment_cannot_be_cancelled(
    client: Client, token: str, runner: FakeRunner
) -> None:
    ready = ship(client, runner, token)

    response = client.post(f"/deployments/{ready['id']}/cancel", headers=bearer(token))

    assert response.status_code == 409
    assert "already ready" in response.json()["detail"]


def test_a_newer_push_supersedes_the_unfinished_one(
    client: Client, token: str, runner: FakeRunner
) -> None:
    older = deploy(client, token)
    tick(client)

    newer = deploy(client, token)
    tick(client)

    old = fetch(client, token, older["id"])
    assert old["state"] == "cancelled"
    assert old["error"] == f"superseded by {newer['id']}"
    assert old["error_code"] == "superseded"
    assert runner.build_of(older["id"]).cancelled
    assert fetch(client, token, newer["id"])["state"] == "building"


def test_other_branches_are_not_superseded(client: Client, token: str) -> None:
    main = deploy(client, token)
    deploy(client, token, ref="feature/login")

    assert fetch(client, token, main["id"])["state"] == "queued"


def test_promote_rolls_production_back_and_forth(
    client: Client, token: str, runner: FakeRunner
) -> None:
    first = ship(client, runner, token)
    second = ship(client, runner, token)
    assert aliases(client)["web"] == second["id"]

    response = client.post(f"/deployments/{first['id']}/promote", headers=bearer(token))

    assert response.status_code == 200
    assert "http://web.localhost:8080" in response.json()["aliases"]
    assert aliases(client)["web"] == first["id"]
    client.post(f"/deployments/{second['id']}/promote", headers=bearer(token))
    assert aliases(client)["web"] == second["id"]


def test_a_late_finishing_older_build_does_not_take_production_back(
    client: Client, token: str, runner: FakeRunner
) -> None:
    older = deploy(client, token, ref="v1.0")
    client.run(
        lambda: Deployment.update({Deployment.target: "production", Deployment.branch: None}).where(
            Deployment.state == "queued"
        )
    )
    tick(client)
    newer = ship(client, runner, token)

    succeed(client, runner, older["id"])
    tick(client)

    assert fetch(client, token, older["id"])["state"] == "ready"
    assert aliases(client)["web"] == newer["id"]


def test_only_a_ready_deployment_can_be_promoted(client: Client, token: str) -> None:
    queued = deploy(client, token)

    response = client.post(f"/deployments/{queued['id']}/promote", headers=bearer(token))

    assert response.status_code == 409
    assert "this one is queued" in response.json()["detail"]


def test_someone_elses_deployments_are_not_found(
    client: Client, token: str, runner: FakeRunner
) -> None:
    deployment = deploy(client, token)
    other = sign_up(client, "bob@example.com")

    for method, path in [
        ("GET", f"/deployments/{deployment['id']}"),
        ("GET", f"/deployments/{deployment['id']}/logs"),
        ("POST", f"/deployments/{deployment['id']}/cancel"),
        ("POST", f"/deployments/{deployment['id']}/promote"),
        ("GET", "/projects/web/deployments"),
    ]:
        response = client.request(method, path, headers=bearer(other))
        assert response.status_code == 404, (method, path)
    response = client.post("/deploy", json={"project": "web"}, headers=bearer(other))
    assert response.status_code == 404
    assert fetch(client, token, deployment["id"])["state"] == "queued"


@pytest.mark.parametrize("bad_id", ["nope", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_deployment_is_a_404(client: Client, token: str, bad_id: str) -> None:
    response = client.get(f"/deployments/{bad_id}", headers=bearer(token))

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_an_unknown_ref_is_explained(client: Client, token: str) -> None:
    response = client.post("/deploy", json={"project": "web", "ref": "nope"}, headers=bearer(token))

    assert response.status_code == 400
    assert "no branch or tag 'nope'" in response.json()["detail"]
    assert client.run(lambda: Deployment.count()) == 0


def test_deploying_needs_a_signed_in_user(client: Client) -> None:
    assert client.post("/deploy", json={"project": "web"}).status_code == 401
