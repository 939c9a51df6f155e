"""The reconcile loop's own edges: slots, claims, replicas, restarts and late news."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import pytest

from app.aliases import announcer
from app.deployments.lifecycle import DeploymentState
from app.deployments.publish import publish
from app.deployments.transitions import move
from app.errors import ErrorCode
from app.projects.envvars import Sealer
from app.reconcile import Reconciler
from app.runners.api import RunnerError
from app.settings import Settings
from app.storage import StorageError
from app.tables import Deployment
from builder.spec import LOGS_ROOT, BuildSpec
from tests.support.api import Client, bearer
from tests.support.deploying import aliases, deploy, fetch, make_roomy
from tests.support.deployments import FakeRunner, succeed, tick


def test_builds_wait_for_a_free_slot(
    client: Client, token: str, runner: FakeRunner, settings: Settings
) -> None:
    for _ in range(settings.max_concurrent_builds + 1):
        deploy(client, token, ref="v1.0")

    tick(client)

    assert len(runner.builds) == settings.max_concurrent_builds
    first = next(iter(runner.builds.values()))
    succeed(client, runner, first.spec.deployment_id)
    tick(client)
    assert len(runner.builds) == settings.max_concurrent_builds + 1


def test_two_reconcilers_start_each_build_once(
    client: Client, token: str, runner: FakeRunner, settings: Settings
) -> None:
    for _ in range(6):
        deploy(client, token, ref="v1.0")
    services = client.app.state.services
    shared = FakeRunner()  # like ECS: every replica reaches the same builds
    roomy = make_roomy(settings)
    reconcilers = [
        Reconciler(
            roomy,
            services.reconciler.engine,
            services.reconciler.storage,
            services.bus,
            shared,
            Sealer(settings.require_secret_keys()),
        )
        for _ in range(2)
    ]

    async def race() -> None:
        for _ in range(3):
            await asyncio.gather(*(reconciler.tick() for reconciler in reconcilers))

    client.run(race)

    started = [build.spec.deployment_id for build in shared.builds.values()]
    assert len(started) == 6
    assert len(set(started)) == 6
    states = client.run(lambda: Deployment.select(Deployment.state, Deployment.runner_handle))
    assert {row["state"] for row in states} == {"building"}
    assert all(row["runner_handle"] for row in states)


def test_a_full_house_waits(
    client: Client, token: str, runner: FakeRunner, settings: Settings
) -> None:
    for _ in range(settings.max_concurrent_builds + 1):
        deploy(client, token, ref="v1.0")
    tick(client)

    tick(client)  # no slot has freed up

    assert len(runner.builds) == settings.max_concurrent_builds


def test_a_fresh_claim_without_a_handle_is_given_time(
    client: Client, token: str, runner: FakeRunner
) -> None:
    deployment = deploy(client, token)
    reconciler: Reconciler = client.app.state.services.reconciler
    client.run(
        lambda: Deployment.update(
            {
                Deployment.state: "building",
                Deployment.started_at: datetime.now(UTC),
                Deployment.runner_owner: reconciler.replica.id,
            }
        ).where(Deployment.state == "queued")
    )

    tick(client)

    assert fetch(client, token, deployment["id"])["state"] == "building"
    assert runner.builds == {}


def test_a_build_cancelled_while_starting_is_stopped(
    client: Client, token: str, runner: FakeRunner
) -> None:
    deployment = deploy(client, token)
    real_start = runner.start

    async def start_while_cancelled(spec: BuildSpec) -> str:
        handle = await real_start(spec)
        await move(spec.deployment_id, [DeploymentState.BUILDING], DeploymentState.CANCELLED)
        return handle

    runner.start = start_while_cancelled  # type: ignore[method-assign]

    tick(client)

    assert runner.build_of(deployment["id"]).cancelled
    assert fetch(client, token, deployment["id"])["state"] == "cancelled"


def test_a_runner_that_cannot_stop_a_build_is_logged(
    client: Client, token: str, runner: FakeRunner, caplog: pytest.LogCaptureFixture
) -> None:
    deployment = deploy(client, token)
    tick(client)

    async def refuse(handle: str) -> None:
        raise RunnerError("ECS said no")

    runner.cancel = refuse  # type: ignore[method-assign]

    response = client.post(f"/deployments/{deployment['id']}/cancel", headers=bearer(token))

    assert response.json()["state"] == "cancelled"
    assert "could not stop build" in caplog.messages


def test_a_log_that_cannot_be_archived_stays_readable(
    client: Client,
    token: str,
    runner: FakeRunner,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployment = deploy(client, token)
    tick(client)
    storage = client.app.state.services.reconciler.storage
    real_put = storage.put

    async def put(key: str, data: bytes, **kwargs: Any) -> None:
        if key.startswith(LOGS_ROOT):
            raise StorageError("bucket unreachable")
        await real_put(key, data, **kwargs)

    monkeypatch.setattr(storage, "put", put)
    succeed(client, runner, deployment["id"])

    tick(client)

    assert fetch(client, token, deployment["id"])["state"] == "ready"
    assert "log archive failed" in caplog.messages
    log = client.get(f"/deployments/{deployment['id']}/logs", headers=bearer(token))
    assert "built 3 pages" in log.text


def test_the_loop_survives_a_bad_pass_and_wakes_on_demand(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    reconciler: Reconciler = client.app.state.services.reconciler
    passes: list[asyncio.Event] = []

    async def flaky_tick() -> None:
        passes[len([p for p in passes if p.is_set()])].set()
        if passes[1].is_set():
            return
        raise RuntimeError("database blip")

    reconciler.tick = flaky_tick  # type: ignore[method-assign]

    async def scenario() -> None:
        passes.extend(asyncio.Event() for _ in range(3))
        task = asyncio.create_task(reconciler.run())
        await asyncio.wait_for(passes[0].wait(), 5)
        reconciler.wake()  # the second pass comes now, not after the interval
        await asyncio.wait_for(passes[1].wait(), 5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    client.run(scenario)

    assert "reconcile pass failed" in caplog.messages


def test_late_news_of_an_ended_deployment_changes_nothing(
    client: Client, token: str, runner: FakeRunner
) -> None:
    deployment = deploy(client, token)
    tick(client)
    client.post(f"/deployments/{deployment['id']}/cancel", headers=bearer(token))
    reconciler: Reconciler = client.app.state.services.reconciler
    before = fetch(client, token, deployment["id"])

    # What a second replica polling the same build a moment too late would do.
    client.run(lambda: reconciler._ready(deployment["id"]))
    client.run(lambda: reconciler._fail(deployment["id"], "late", ErrorCode.BUILD_FAILED))
    client.run(lambda: reconciler._skipped(deployment["id"], "late"))

    assert fetch(client, token, deployment["id"]) == before
    assert aliases(client) == {}


def test_publishing_an_unknown_deployment_does_nothing(client: Client) -> None:
    engine = client.app.state.services.reconciler.engine

    client.run(lambda: publish(engine, "00000000-0000-0000-0000-000000000000", announcer(None)))

    assert aliases(client) == {}
