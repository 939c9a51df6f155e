"""How a deployment fails: the reason and its code, and a live site left as it was."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from app.projects.envvars import Sealer
from app.reconcile import Reconciler
from app.runners.api import RunStatus
from app.settings import Settings
from app.tables import Deployment
from tests.support.api import Client, bearer
from tests.support.deploying import aliases, deploy, fetch, ship
from tests.support.deployments import FakeRunner, fail, succeed, tick


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
        Sealer(other_key.require_secret_keys()),
    )

    client.run(reconciler.tick)

    result = fetch(client, token, deployment["id"])
    assert result["state"] == "failed"
    assert "SCALEMESH_SECRET_KEY" in result["error"]
    assert result["error_code"] == "env_unopenable"
    assert runner.builds == {}


def attempts(client: Client, deployment_id: str) -> int:
    rows = client.run(
        lambda: Deployment.select(Deployment.attempts).where(Deployment.id == deployment_id)
    )
    return int(rows[0]["attempts"])


def log_texts(client: Client, token: str, deployment_id: str) -> list[str]:
    response = client.get(f"/deployments/{deployment_id}/logs", headers=bearer(token))
    return response.text.splitlines()


def test_a_restart_mid_build_builds_it_again_then_gives_up(
    client: Client, token: str, runner: FakeRunner
) -> None:
    deployment = deploy(client, token)
    tick(client)
    assert attempts(client, deployment["id"]) == 1

    for attempt in (2, 3):
        runner.builds.clear()  # what a new process's runner knows of the old one's builds
        tick(client)

        result = fetch(client, token, deployment["id"])
        assert result["state"] == "building"
        assert attempts(client, deployment["id"]) == attempt
        assert runner.spec_of(deployment["id"]).deployment_id == deployment["id"]
    runner.builds.clear()
    tick(client)

    result = fetch(client, token, deployment["id"])
    assert result["state"] == "failed"
    assert result["error"] == "interrupted by a restart; gave up after 3 attempts"
    assert result["error_code"] == "interrupted"
    texts = log_texts(client, token, deployment["id"])
    assert sum("interrupted by a restart; building again" in text for text in texts) == 2


def claim_without_a_build(client: Client, attempts_so_far: int) -> None:
    """This replica claimed it long ago, and its runner never got to start it."""
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    owner = client.app.state.services.reconciler.replica.id
    client.run(
        lambda: Deployment.update(
            {
                Deployment.state: "building",
                Deployment.started_at: long_ago,
                Deployment.attempts: attempts_so_far,
                Deployment.runner_owner: owner,
            }
        ).where(Deployment.state == "queued")
    )


def test_a_claim_without_a_build_is_built_again(
    client: Client, token: str, runner: FakeRunner
) -> None:
    deployment = deploy(client, token)
    claim_without_a_build(client, 1)

    tick(client)

    result = fetch(client, token, deployment["id"])
    assert result["state"] == "building"
    assert attempts(client, deployment["id"]) == 2
    assert runner.spec_of(deployment["id"]).deployment_id == deployment["id"]


def test_a_claim_without_a_build_fails_once_out_of_attempts(client: Client, token: str) -> None:
    deployment = deploy(client, token)
    claim_without_a_build(client, 3)

    tick(client)

    result = fetch(client, token, deployment["id"])
    assert result["state"] == "failed"
    assert result["error"] == "interrupted by a restart before it began; gave up after 3 attempts"
    assert result["error_code"] == "interrupted"
