"""Replicas: each judges only the builds it started; a dead replica's builds are adopted once."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.deployments.records import RunningBuild
from app.reconcile import Reconciler
from app.replicas import FORGET_AFTER, MIN_DEAD_AFTER, Seen, dead_after
from app.runners.local import LocalRunner, _foreign_builder_alive
from app.settings import Settings
from app.tables import Deployment
from app.tables import Replica as ReplicaRow
from tests.support.api import Client, bearer, sign_up
from tests.support.deploying import deploy, replica
from tests.support.deployments import FakeRunner, fail, succeed
from tests.support.runners import FAKE_BUILDER, FAKE_SANDBOX
from tests.support.waiting import eventually_async


def rows(client: Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.run(
        lambda: Deployment.select(
            Deployment.id,
            Deployment.state,
            Deployment.attempts,
            Deployment.runner_owner,
            Deployment.runner_handle,
        ).order_by(Deployment.created_at)
    )
    return found


def die(client: Client, name: str) -> None:
    """What kill -9 leaves: the replica's row, no longer beating."""
    stale = datetime.now(UTC) - MIN_DEAD_AFTER - timedelta(seconds=5)
    client.run(
        lambda: ReplicaRow.update({ReplicaRow.heartbeat_at: stale}).where(ReplicaRow.id == name)
    )


def passes(client: Client, reconcilers: list[Reconciler], times: int = 3) -> None:
    async def race() -> None:
        for _ in range(times):
            await asyncio.gather(*(reconciler.tick() for reconciler in reconcilers))

    client.run(race)


def test_replicas_with_runners_of_their_own_do_not_fail_each_others_builds(
    client: Client, token: str, settings: Settings
) -> None:
    for _ in range(6):
        deploy(client, token, ref="v1.0")
    # Like two hosts (or `serve api --workers 2`): each runner knows only its own builds.
    runners = [FakeRunner(shared_handles=False), FakeRunner(shared_handles=False)]
    reconcilers = [
        replica(client, settings, r, name) for r, name in zip(runners, "ab", strict=True)
    ]

    passes(client, reconcilers)
    started = {
        build.spec.deployment_id: runner for runner in runners for build in runner.builds.values()
    }
    assert len(started) == 6
    assert sum(len(runner.builds) for runner in runners) == 6
    for deployment_id, runner in started.items():
        succeed(client, runner, deployment_id)
    passes(client, reconcilers)

    seen = rows(client)
    assert {row["state"] for row in seen} == {"ready"}
    assert {row["attempts"] for row in seen} == {1}
    assert sum(len(runner.builds) for runner in runners) == 6


def test_workers_on_one_machine_leave_each_others_ended_builds_to_their_owner(
    client: Client, token: str, settings: Settings, tmp_path: Path
) -> None:
    """`serve api --workers 2`: a worker used to find the other's builder gone the moment it
    exited, before its owner had read its end, and queued the build again."""
    for _ in range(3):
        deploy(client, token, ref="v1.0")
    bus = client.app.state.services.bus
    runners = [
        LocalRunner(
            bus,
            {"PATH": os.environ["PATH"]},
            tmp_path / f"builds-{name}",
            command=[sys.executable, str(FAKE_BUILDER)],
            sandbox=FAKE_SANDBOX,
        )
        for name in "ab"
    ]
    owner, other = (
        replica(client, settings, r, name) for r, name in zip(runners, "ab", strict=True)
    )

    async def scenario() -> None:
        await owner.tick()  # starts all three
        handles = [
            row["runner_handle"] for row in await Deployment.select(Deployment.runner_handle)
        ]

        async def exited() -> bool:
            return not any(_foreign_builder_alive(handle) for handle in handles)

        await eventually_async(exited, what="the builders exiting")
        await other.tick()  # the other worker passes first

        async def ended() -> bool:
            await owner.tick()
            return not await Deployment.exists().where(Deployment.state == "building")

        await eventually_async(ended, what="the owner reading the builds' ends")
        for runner in runners:
            await runner.aclose()

    client.run(scenario)

    seen = rows(client)
    assert len(seen) == 3
    # The fake builder uploads nothing: each ends as its owner saw it, built once.
    assert {row["attempts"] for row in seen} == {1}
    codes = client.run(lambda: Deployment.select(Deployment.error_code))
    assert {row["error_code"] for row in codes} == {"no_output"}


def test_a_cancel_served_by_another_replica_is_carried_out_by_the_build_s_own(
    client: Client, token: str, settings: Settings, runner: FakeRunner
) -> None:
    runner.shared_handles = False  # the app's replica runs local builds too
    deployment = deploy(client, token)
    local = FakeRunner(shared_handles=False)
    owner = replica(client, settings, local, "a", host="one")
    passes(client, [owner], times=1)

    # Served by the app's own replica, on another machine: it must not signal a pid there.
    response = client.post(f"/deployments/{deployment['id']}/cancel", headers=bearer(token))

    assert response.json()["state"] == "cancelled"
    assert not local.build_of(deployment["id"]).cancelled
    passes(client, [owner], times=1)
    assert local.build_of(deployment["id"]).cancelled
    [row] = rows(client)
    assert row["runner_owner"] is None
    passes(client, [owner], times=1)  # stopped once: nothing left to stop


def test_an_ended_build_is_stopped_once_by_whichever_replica_reaches_it(
    client: Client,
    token: str,
    settings: Settings,
    runner: FakeRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failing, cancelled = deploy(client, token), deploy(client, token, ref="v1.0")
    shared = runner  # ECS: the replica serving the cancel (the app's) stops the task itself
    owner, other = (replica(client, settings, shared, name) for name in "ab")
    passes(client, [owner], times=1)
    stops: list[str] = []
    real_cancel = shared.cancel

    async def counted(handle: str) -> None:
        stops.append(handle)
        await real_cancel(handle)

    monkeypatch.setattr(shared, "cancel", counted)
    fail(client, shared, failing["id"], "exit 1")
    response = client.post(f"/deployments/{cancelled['id']}/cancel", headers=bearer(token))
    assert response.json()["state"] == "cancelled"

    passes(client, [owner, other])

    assert sorted(stops) == sorted(row["runner_handle"] for row in rows(client))
    assert {row["runner_owner"] for row in rows(client)} == {None}


def test_another_account_cannot_cancel_a_build_another_replica_runs(
    client: Client, token: str, settings: Settings
) -> None:
    deployment = deploy(client, token)
    runner = FakeRunner(shared_handles=False)
    owner = replica(client, settings, runner, "a", host="one")
    passes(client, [owner], times=1)
    [before] = rows(client)
    stranger = sign_up(client, "mallory@example.com")

    response = client.post(f"/deployments/{deployment['id']}/cancel", headers=bearer(stranger))

    assert response.status_code == 404
    passes(client, [owner], times=1)  # nothing ended there for its owner to stop
    assert not runner.build_of(deployment["id"]).cancelled
    assert rows(client) == [before]
    assert before["runner_owner"] == "a"


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("runner_owner", "a"),
        ("start_after", "2000-01-01T00:00:00Z"),
        ("publish_pending", True),
        ("finish_claimed_until", "2100-01-01T00:00:00Z"),
    ],
)
def test_a_deploy_request_cannot_set_who_runs_starts_publishes_or_wraps_up_its_build(
    client: Client, token: str, column: str, value: object
) -> None:
    response = client.post("/deploy", json={"project": "web", column: value}, headers=bearer(token))

    assert response.status_code == 400, response.text
    assert rows(client) == []


def test_a_dead_replicas_build_is_adopted_once_and_watched_where_its_handle_is_seen(
    client: Client, token: str, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    deployment = deploy(client, token)
    shared = FakeRunner()  # ECS: every replica reaches every task
    first = replica(client, settings, shared, "a")
    passes(client, [first], times=1)
    [before] = rows(client)
    die(client, "a")
    snapshot = RunningBuild.of(
        client.run(
            lambda: (
                Deployment.select(*RunningBuild.COLUMNS)
                .where(Deployment.id == deployment["id"])
                .first()
            )
        )
    )
    survivors = [replica(client, settings, shared, name) for name in "bc"]

    passes(client, survivors, times=1)
    # A replica that saw the dead owner a moment ago, and claims it after the other did.
    dead = Seen(host="one", alive=False)
    client.run(lambda: survivors[1]._adopt(snapshot, datetime.now(UTC), dead))

    [after] = rows(client)
    assert caplog.messages.count("build adopted from a dead replica") == 1
    assert after["runner_owner"] in {"b", "c"}
    assert after["state"] == "building"
    assert after["runner_handle"] == before["runner_handle"]  # the same task, not a new build
    assert len(shared.builds) == 1
    succeed(client, shared, deployment["id"])
    passes(client, survivors, times=1)
    [done] = rows(client)
    assert (done["state"], done["attempts"]) == ("ready", 1)


def test_a_local_build_of_a_dead_replica_on_another_host_is_built_again(
    client: Client, token: str, settings: Settings
) -> None:
    deployment = deploy(client, token)
    first = replica(client, settings, FakeRunner(shared_handles=False), "a", host="one")
    passes(client, [first], times=1)
    die(client, "a")
    runner = FakeRunner(shared_handles=False)
    survivor = replica(client, settings, runner, "b", host="two")

    passes(client, [survivor], times=1)

    [row] = rows(client)
    assert (row["state"], row["attempts"], row["runner_owner"]) == ("building", 2, "b")
    succeed(client, runner, deployment["id"])
    passes(client, [survivor], times=1)
    assert rows(client)[0]["state"] == "ready"


def test_a_local_build_of_a_dead_replica_on_this_host_is_asked_about(
    client: Client, token: str, settings: Settings
) -> None:
    deploy(client, token)
    first_runner = FakeRunner(shared_handles=False)
    first = replica(client, settings, first_runner, "a", host="one")
    passes(client, [first], times=1)
    die(client, "a")
    # The same machine sees the build's process: still running, so it is left to run.
    survivor = replica(client, settings, first_runner, "b", host="one")

    passes(client, [survivor], times=1)

    [row] = rows(client)
    assert (row["state"], row["attempts"], row["runner_owner"]) == ("building", 1, "b")


def test_a_dead_replicas_claim_without_a_build_is_queued_again_at_once(
    client: Client, token: str, settings: Settings
) -> None:
    deploy(client, token)
    client.run(
        lambda: Deployment.update(
            {
                Deployment.state: "building",
                Deployment.started_at: datetime.now(UTC),
                Deployment.attempts: 1,
                Deployment.runner_owner: "gone",
            },
            force=True,
        )
    )
    runner = FakeRunner()

    passes(client, [replica(client, settings, runner, "b")], times=1)

    [row] = rows(client)
    assert (row["state"], row["attempts"], row["runner_owner"]) == ("building", 2, "b")
    assert len(runner.builds) == 1


def test_a_build_started_before_replicas_were_recorded_is_adopted(
    client: Client, token: str, settings: Settings
) -> None:
    deploy(client, token)
    shared = FakeRunner()
    passes(client, [replica(client, settings, shared, "a")], times=1)
    client.run(lambda: Deployment.update({Deployment.runner_owner: None}, force=True))

    passes(client, [replica(client, settings, shared, "b")], times=1)

    [row] = rows(client)
    assert (row["state"], row["attempts"], row["runner_owner"]) == ("building", 1, "b")


def test_a_replica_leaving_cleanly_removes_its_row_and_stale_rows_are_forgotten(
    client: Client,
) -> None:
    reconciler: Reconciler = client.app.state.services.reconciler
    long_dead = datetime.now(UTC) - FORGET_AFTER - timedelta(minutes=1)

    async def scenario() -> list[str]:
        await ReplicaRow.insert(ReplicaRow(id="old", host="x", heartbeat_at=long_dead))
        await reconciler.replica.beat()
        await reconciler.replica.beat()
        return [str(row["id"]) for row in await ReplicaRow.select(ReplicaRow.id)]

    assert client.run(scenario) == [reconciler.replica.id]
    client.run(reconciler.replica.stop)
    assert client.run(lambda: ReplicaRow.count()) == 0


def test_a_replica_that_cannot_remove_its_row_still_stops(
    client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reconciler: Reconciler = client.app.state.services.reconciler
    client.run(reconciler.replica.beat)

    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("database gone")

    monkeypatch.setattr(ReplicaRow, "delete", unreachable)
    client.run(reconciler.replica.stop)

    assert "replica row not removed" in caplog.messages


def test_the_app_leaves_as_a_replica_when_it_stops(settings: Settings) -> None:
    from app.asgi import create_app

    with Client(create_app(settings, runner=FakeRunner(), reconcile=False)) as client:
        client.run(client.app.state.services.reconciler.tick)
        assert client.run(lambda: ReplicaRow.count()) == 1
    with Client(create_app(settings, runner=FakeRunner(), reconcile=False)) as client:
        assert client.run(lambda: ReplicaRow.count()) == 0


def test_a_replica_is_dead_after_ten_missed_passes_and_never_sooner_than_ten_seconds() -> None:
    assert dead_after(0.5) == timedelta(seconds=10)
    assert dead_after(3.0) == timedelta(seconds=30)
