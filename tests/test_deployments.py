"""The deployment lifecycle through the API and the reconcile loop, with a scripted runner.

The runner here is a fake that does what a builder would (log events, upload a manifest) when
told to, so every path of the loop can be driven pass by pass. `test_pipeline.py` runs the real
builder end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.aliases import announcer
from app.asgi import create_app
from app.deployments.lifecycle import TRANSITIONS, DeploymentState
from app.deployments.publish import publish
from app.deployments.transitions import move
from app.errors import ErrorCode
from app.hostnames import short_id as short
from app.projects.envvars import Sealer
from app.reconcile import Reconciler
from app.reporting.phases import to_github_state
from app.runners.api import RunnerError, RunStatus
from app.settings import Settings
from app.storage import StorageError
from app.tables import Alias, Deployment
from builder.spec import LOGS_ROOT, BuildSpec
from tests.support.api import Client, bearer, sign_up
from tests.support.deployments import MAIN_SHA, FakeResolver, FakeRunner, fail, succeed, tick


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


def deploy(client: Client, token: str, **body: Any) -> dict[str, Any]:
    body.setdefault("project", "web")
    response = client.post("/deploy", json=body, headers=bearer(token))
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


def fetch(client: Client, token: str, deployment_id: str) -> dict[str, Any]:
    response = client.get(f"/deployments/{deployment_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def aliases(client: Client) -> dict[str, str]:
    rows = client.run(lambda: Alias.select(Alias.hostname, Alias.deployment))
    return {row["hostname"]: str(row["deployment"]) for row in rows}


def ship(client: Client, runner: FakeRunner, token: str, **body: Any) -> dict[str, Any]:
    deployment = deploy(client, token, **body)
    tick(client)
    succeed(client, runner, deployment["id"])
    tick(client)
    return fetch(client, token, deployment["id"])


# --- the happy path -------------------------------------------------------------------------


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


# --- failures -------------------------------------------------------------------------------


def test_a_failed_build_keeps_the_site_as_it_was(
    client: Client, token: str, runner: FakeRunner
) -> None:
    live = ship(client, runner, token)
    broken = deploy(client, token)
    tick(client)

    fail(client, runner, broken["id"], "build: npm run build exited with code 1")
    tick(client)

    result = fetch(client, token, broken["id"])
    assert result["state"] == "failed"
    assert result["error"] == "build: npm run build exited with code 1"
    assert result["error_code"] == "build_failed"
    assert aliases(client)["web"] == live["id"]
    assert aliases(client)["web-git-main"] == live["id"]
    assert result["aliases"] == []
    log = client.get(f"/deployments/{broken['id']}/logs", headers=bearer(token)).text
    assert "failed" in log


def test_the_runner_reason_is_used_when_the_builder_said_nothing(
    client: Client, token: str, runner: FakeRunner
) -> None:
    deployment = deploy(client, token)
    tick(client)
    build = runner.build_of(deployment["id"])
    build.status, build.reason = RunStatus.FAILED, "CannotPullContainerError: no such image"

    tick(client)

    assert fetch(client, token, deployment["id"])["error"] == (
        "CannotPullContainerError: no such image"
    )


def test_the_last_stderr_line_explains_a_crash(
    client: Client, token: str, runner: FakeRunner
) -> None:
    deployment = deploy(client, token)
    tick(client)
    bus = client.app.state.services.bus
    client.run(
        lambda: bus.append(
            deployment["id"], {"type": "line", "stream": "stderr", "text": "MemoryError  "}
        )
    )
    runner.build_of(deployment["id"]).status = RunStatus.FAILED

    tick(client)

    assert fetch(client, token, deployment["id"])["error"] == "MemoryError"


def test_success_without_a_manifest_is_a_failure(
    client: Client, token: str, runner: FakeRunner
) -> None:
    deployment = deploy(client, token)
    tick(client)
    runner.build_of(deployment["id"]).status = RunStatus.SUCCEEDED

    tick(client)

    result = fetch(client, token, deployment["id"])
    assert result["state"] == "failed"
    assert "without uploading its files" in result["error"]
    assert result["error_code"] == "no_output"
    assert aliases(client) == {}


def test_a_build_past_its_timeout_is_stopped(
    client: Client, token: str, runner: FakeRunner, settings: Settings
) -> None:
    deployment = deploy(client, token)
    tick(client)
    long_ago = datetime.now(UTC) - timedelta(seconds=settings.build_timeout + 120)
    client.run(
        lambda: Deployment.update({Deployment.started_at: long_ago}).where(
            Deployment.state == "building"
        )
    )

    tick(client)

    result = fetch(client, token, deployment["id"])
    assert result["state"] == "failed"
    assert result["error"] == f"the build timed out after {settings.build_timeout} s"
    assert result["error_code"] == "timeout"
    assert runner.build_of(deployment["id"]).cancelled


def test_a_runner_that_cannot_start_fails_the_deployment(
    client: Client, token: str, runner: FakeRunner
) -> None:
    runner.fail_start = "RESOURCE:MEMORY"
    deployment = deploy(client, token)

    tick(client)

    result = fetch(client, token, deployment["id"])
    assert result["state"] == "failed"
    assert result["error"] == "the build could not start: RESOURCE:MEMORY"
    assert result["error_code"] == "start_failed"


def test_an_unreachable_runner_is_asked_again_later(
    client: Client, token: str, runner: FakeRunner
) -> None:
    deployment = deploy(client, token)
    tick(client)
    runner.poll_error = True

    tick(client)

    assert fetch(client, token, deployment["id"])["state"] == "building"
    runner.poll_error = False
    succeed(client, runner, deployment["id"])
    tick(client)
    assert fetch(client, token, deployment["id"])["state"] == "ready"


def test_env_vars_that_no_longer_open_fail_the_build(
    client: Client,
    token: str,
    runner: FakeRunner,
    make_settings: Callable[..., Settings],
    database_url: str,
) -> None:
    deployment = deploy(client, token)
    other_key = make_settings(
        SCALEMESH_DATABASE_URL=database_url, SCALEMESH_SECRET_KEY="another-key-" + "y" * 40
    )
    services = client.app.state.services
    reconciler = Reconciler(
        other_key,
        services.reconciler.engine,
        services.reconciler.storage,
        services.bus,
        runner,
        Sealer(other_key.secret_key),
    )

    client.run(reconciler.tick)

    result = fetch(client, token, deployment["id"])
    assert result["state"] == "failed"
    assert "SCALEMESH_SECRET_KEY" in result["error"]
    assert result["error_code"] == "env_unopenable"
    assert runner.builds == {}


# --- cancel, supersede, promote, restart ---------------------------------------------------


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


def test_a_restart_mid_build_fails_the_deployment(
    client: Client, token: str, runner: FakeRunner
) -> None:
    deployment = deploy(client, token)
    tick(client)
    runner.builds.clear()  # what a new process's runner knows of the old one's builds

    tick(client)

    result = fetch(client, token, deployment["id"])
    assert result["state"] == "failed"
    assert result["error"] == "interrupted by a restart"
    assert result["error_code"] == "interrupted"


def test_a_claim_without_a_build_is_failed_after_a_while(client: Client, token: str) -> None:
    deployment = deploy(client, token)
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    client.run(
        lambda: Deployment.update(
            {Deployment.state: "building", Deployment.started_at: long_ago}
        ).where(Deployment.state == "queued")
    )

    tick(client)

    result = fetch(client, token, deployment["id"])
    assert result["state"] == "failed"
    assert "before the build began" in result["error"]
    assert result["error_code"] == "interrupted"


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


# --- who may see what -----------------------------------------------------------------------


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


# --- the state vocabulary -------------------------------------------------------------------


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
            Sealer(settings.secret_key),
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


def make_roomy(settings: Settings) -> Settings:
    from dataclasses import replace

    return replace(settings, max_concurrent_builds=10)


# --- the loop's own edges -------------------------------------------------------------------


def test_a_full_house_waits(
    client: Client, token: str, runner: FakeRunner, settings: Settings
) -> None:
    for _ in range(settings.max_concurrent_builds + 1):
        deploy(client, token, ref="v1.0")
    tick(client)

    tick(client)  # no slot has freed up

    assert len(runner.builds) == settings.max_concurrent_builds


def test_a_fresh_claim_without_a_handle_is_given_time(client: Client, token: str) -> None:
    deployment = deploy(client, token)
    client.run(
        lambda: Deployment.update(
            {Deployment.state: "building", Deployment.started_at: datetime.now(UTC)}
        ).where(Deployment.state == "queued")
    )

    tick(client)

    assert fetch(client, token, deployment["id"])["state"] == "building"


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

    assert fetch(client, token, deployment["id"]) == before
    assert aliases(client) == {}


def test_publishing_an_unknown_deployment_does_nothing(client: Client) -> None:
    engine = client.app.state.services.reconciler.engine

    client.run(lambda: publish(engine, "00000000-0000-0000-0000-000000000000", announcer(None)))

    assert aliases(client) == {}


def test_a_project_without_deployments_lists_none(client: Client, token: str) -> None:
    response = client.get("/projects/web/deployments", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == []
