"""A build that decided not to deploy: the `skipped` state, what is stored and shown, what stays
live; and the commit each build is given to compare with (`previous_sha`)."""

from __future__ import annotations

import json

import pytest

from app.deployments.lifecycle import FINAL_STATES, TRANSITIONS, DeploymentState
from app.deployments.skips import MAX_SKIP_BYTES, NO_REASON
from app.tables import Deployment
from tests.support.api import Client, bearer
from tests.support.deploying import aliases, deploy, fetch, ship
from tests.support.deployments import MAIN_SHA, FakeRunner, skip, tick

WHY = "no file under apps/web/ changed since aaaaaaa (3 file(s) changed elsewhere)"


def skipped(client: Client, runner: FakeRunner, token: str, raw: bytes, **body: str) -> dict:
    deployment = deploy(client, token, **body)
    tick(client)
    skip(client, runner, deployment["id"], raw)
    tick(client)
    return fetch(client, token, deployment["id"])


def test_skipped_is_final_and_reached_from_building() -> None:
    assert DeploymentState.SKIPPED in FINAL_STATES
    assert TRANSITIONS[DeploymentState.SKIPPED] == frozenset()
    assert DeploymentState.SKIPPED in TRANSITIONS[DeploymentState.BUILDING]
    assert DeploymentState.SKIPPED not in TRANSITIONS[DeploymentState.QUEUED]


def test_a_skipped_build_ends_skipped_with_its_reason_and_moves_no_alias(
    client: Client, token: str, runner: FakeRunner
) -> None:
    live = ship(client, runner, token)
    before = aliases(client)

    shown = skipped(client, runner, token, json.dumps({"reason": WHY}).encode())

    assert shown["state"] == "skipped"
    assert shown["error"] == WHY
    assert shown["error_code"] is None
    assert shown["aliases"] == []
    assert shown["finished_at"] is not None
    assert shown["ready_at"] is None
    assert aliases(client) == before
    assert before["web"] == live["id"]
    events = client.get(
        f"/deployments/{shown['id']}/logs",
        headers={**bearer(token), "Accept": "application/x-ndjson"},
    )
    result = json.loads(events.text.splitlines()[-1])
    assert result["type"] == "result"
    assert (result["state"], result["error"], result["error_code"], result["url"]) == (
        "skipped",
        WHY,
        None,
        None,
    )


def test_a_skipped_deployment_cannot_be_cancelled_or_promoted(
    client: Client, token: str, runner: FakeRunner
) -> None:
    shown = skipped(client, runner, token, b'{"reason": "previews are off"}')

    cancel = client.post(f"/deployments/{shown['id']}/cancel", headers=bearer(token))
    promote = client.post(f"/deployments/{shown['id']}/promote", headers=bearer(token))

    assert cancel.status_code == 409, cancel.text
    assert "already skipped" in cancel.json()["detail"]
    assert promote.status_code == 409, promote.text
    assert "this one is skipped" in promote.json()["detail"]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"reason": 42}',
        b'{"reason": "   "}',
        b"{}",
        json.dumps({"reason": "x" * MAX_SKIP_BYTES}).encode(),
    ],
    ids=["text", "bytes", "list", "number", "blank", "none", "huge"],
)
def test_a_skip_without_a_readable_reason_still_skips(
    client: Client, token: str, runner: FakeRunner, raw: bytes
) -> None:
    shown = skipped(client, runner, token, raw)

    assert shown["state"] == "skipped"
    assert shown["error"] == NO_REASON


def test_a_long_reason_is_kept_to_one_line_of_500_characters(
    client: Client, token: str, runner: FakeRunner
) -> None:
    shown = skipped(client, runner, token, json.dumps({"reason": "why\n" * 300}).encode())

    assert shown["error"] == "why " * 125


# --- previous_sha --------------------------------------------------------------------------


def spec_of(client: Client, runner: FakeRunner, token: str, ref: str) -> str:
    deployment = deploy(client, token, ref=ref)
    tick(client)
    return runner.spec_of(deployment["id"]).previous_sha


def test_the_first_build_has_no_previous_commit(
    client: Client, token: str, runner: FakeRunner
) -> None:
    assert spec_of(client, runner, token, "main") == ""


def test_production_compares_with_the_last_ready_production_deployment(
    client: Client, token: str, runner: FakeRunner
) -> None:
    first = ship(client, runner, token)
    assert first["sha"] == MAIN_SHA
    skipped(client, runner, token, b'{"reason": "nothing changed"}')  # not ready: not compared

    assert spec_of(client, runner, token, "main") == MAIN_SHA


def test_a_preview_compares_with_its_branch_else_production(
    client: Client, token: str, runner: FakeRunner
) -> None:
    ship(client, runner, token)

    # No ready deployment of the branch yet: production's commit.
    first_preview = ship(client, runner, token, ref="feature/login")
    [spec] = [
        build.spec
        for build in runner.builds.values()
        if build.spec.deployment_id == first_preview["id"]
    ]
    assert spec.previous_sha == MAIN_SHA
    # Then the branch's own last ready one.
    assert spec_of(client, runner, token, "feature/login") == first_preview["sha"]
    # A tag has no branch: production's.
    assert spec_of(client, runner, token, "v1.0") == MAIN_SHA


def test_a_ready_row_without_a_full_sha_is_not_compared(
    client: Client, token: str, runner: FakeRunner
) -> None:
    live = ship(client, runner, token)
    client.run(
        lambda: Deployment.update({Deployment.sha: "abc"}).where(Deployment.id == live["id"])
    )

    assert spec_of(client, runner, token, "main") == ""
