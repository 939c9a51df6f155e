"""Reporting: what GitHub is told of each outcome, and how reporting retries and shares the work."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.deployments.lifecycle import DeploymentState
from app.deployments.transitions import move
from app.reporting.reporter import Reporter
from app.reporting.retries import CLAIM_TTL
from app.settings import Settings
from tests.support.api import bearer, sign_up
from tests.support.clock import FrozenClock
from tests.support.deployments import FakeRunner, tick
from tests.support.github_app import (
    PR_SHA,
    PUSH_SHA,
    App,
    claim_elsewhere,
    deployment_urls,
    pr_event,
    reported,
)
from tests.support.webhooks import REPO, payload


def test_a_failed_build_reports_failure_with_its_reason(app: App, token: str) -> None:
    app.deliver("pull_request", pr_event("opened"))
    tick(app.client)
    [deployment] = app.deployments()
    app.build(str(deployment["id"]), error="npm run build exited with 1: missing script")
    _, log_url = deployment_urls(app, deployment)
    final = app.statuses(PR_SHA)[-1]
    assert final == {
        "state": "failure",
        "context": "scalemesh/web",
        "description": "npm run build exited with 1: missing script",
        "target_url": log_url,
    }
    [github_deployment] = app.github.deployments.values()
    assert github_deployment.statuses[-1]["state"] == "failure"
    assert "environment_url" not in github_deployment.statuses[-1] or (
        github_deployment.statuses[-1]["environment_url"] in (None, "")
    )
    [comment] = app.github.comments_on(REPO, 2)
    assert "| **web** | ❌ Failed | — |" in comment.body


def test_a_platform_fault_reports_error(app: App, token: str, runner: FakeRunner) -> None:
    runner.fail_start = "ECS is out of capacity"
    app.deliver("push", payload("push.commits"))
    app.settle()
    [deployment] = app.deployments()
    assert deployment["platform_fault"] is True
    final = app.statuses(PUSH_SHA)[-1]
    assert final["state"] == "error"
    assert "our fault" in final["description"]
    [github_deployment] = app.github.deployments.values()
    assert github_deployment.statuses[-1]["state"] == "error"


def test_a_long_reason_is_cut_to_140_characters(app: App, token: str) -> None:
    app.deliver("push", payload("push.commits"))
    tick(app.client)
    [deployment] = app.deployments()
    app.build(str(deployment["id"]), error="x" * 400)
    description = app.statuses(PUSH_SHA)[-1]["description"]
    assert len(description) == 140
    assert description.endswith("…")


def test_a_superseded_deployment_is_reported_cancelled(app: App, token: str) -> None:
    app.deliver("push", payload("push.commits"))
    app.report()
    newer = payload("push.commits")
    newer["after"] = "e" * 40
    app.deliver("push", newer)
    app.report()
    final = app.statuses(PUSH_SHA)[-1]
    assert final["state"] == "failure"
    assert final["description"].startswith("Cancelled: superseded by")
    first = app.github.deployments[min(app.github.deployments)]
    assert first.statuses[-1]["state"] == "inactive"


def test_reporting_retries_after_github_fails(app: App, token: str, clock: FrozenClock) -> None:
    app.github.fail("commit_status", status=502)
    app.deliver("push", payload("push.commits"))
    assert app.report() == 0
    [deployment] = app.deployments()
    assert (deployment["report_pending"], deployment["reported_phase"]) == (True, None)
    assert deployment["report_claim"] is None  # let go, for any replica to take up
    assert deployment["github_deployment_id"] is not None  # kept: never created twice

    app.github.heal()
    assert app.report() == 0  # waits for its retry time
    clock.advance(2.5)
    assert app.report() == 1
    assert len(app.github.calls_to("POST", f"/repos/{REPO}/deployments")) == 1
    assert app.statuses(PUSH_SHA)[-1]["state"] == "pending"
    assert reported(app) == (False, "queued")


def test_reporting_backs_off_more_after_each_failure(
    app: App, token: str, clock: FrozenClock
) -> None:
    app.github.fail("create_deployment", status=500)
    app.deliver("push", payload("push.commits"))
    attempts = []
    for _ in range(12):
        app.report()
        attempts.append(len(app.github.calls_to("POST", f"/repos/{REPO}/deployments")))
        clock.advance(1.0)
    # tried at t=0, 2, 6: 2 s, then 4 s, then 8 s apart
    assert [attempts[i] for i in (0, 1, 2, 5, 6, 11)] == [1, 1, 2, 2, 3, 3]


def test_a_reporter_pass_survives_a_database_error(app: App, monkeypatch: Any) -> None:
    reporter: Reporter = app.services.reporter
    calls = []

    async def broken() -> int:
        calls.append(1)
        raise RuntimeError("database is away")

    monkeypatch.setattr(reporter, "tick", broken)

    async def run_briefly() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reporter.run(), 0.3)

    app.client.run(run_briefly)  # the loop caught the error and went on to wait
    assert calls == [1]


def test_a_project_without_an_installation_is_not_reported(app: App) -> None:
    token = sign_up(app.client)
    app.client.post(
        "/project",
        json={"name": "web", "repo": REPO, "production_branch": "main"},
        headers=bearer(token),
    )
    response = app.client.post("/deploy", json={"project": "web"}, headers=bearer(token))
    assert response.status_code == 202
    app.report()
    assert app.github.calls == []
    assert reported(app) == (False, "unreported")


def test_a_manual_deploy_of_an_installed_repository_is_reported(app: App, token: str) -> None:
    # A bound project's branch is resolved through GitHub's API (app.refs.resolve_on_github).
    app.github.refs.set_branch(REPO, "main", "f" * 40)
    response = app.client.post("/deploy", json={"project": "web"}, headers=bearer(token))
    assert response.status_code == 202
    assert response.json()["sha"] == "f" * 40
    app.report()
    assert app.github.calls_to("POST", f"/repos/{REPO}/deployments")


def test_a_deployment_another_replica_is_reporting_is_left_to_it(app: App, token: str) -> None:
    app.deliver("push", payload("push.commits"))
    claim_elsewhere(app, datetime.now(UTC) + timedelta(seconds=CLAIM_TTL))  # a moment ago
    assert app.report() == 0
    assert app.github.calls_to("POST", f"/repos/{REPO}/deployments") == []

    claim_elsewhere(app, datetime.now(UTC) - timedelta(seconds=1))  # it died mid-report
    assert app.report() == 1
    assert len(app.github.calls_to("POST", f"/repos/{REPO}/deployments")) == 1
    assert reported(app) == (False, "queued")


def test_two_replicas_reporting_at_once_create_one_github_deployment(
    app: App, token: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.deliver("push", payload("push.commits"))
    first: Reporter = app.services.reporter
    second = Reporter(settings, app.services.github)
    first_claim, second_claim = first._claim, second._claim

    async def both() -> list[int]:
        # Both passes read the row before either claims it; the second claims first.
        claimed = asyncio.Event()

        async def claim_after_the_other(view: Any) -> str | None:
            await claimed.wait()
            return await first_claim(view)

        async def claim_and_tell(view: Any) -> str | None:
            try:
                return await second_claim(view)
            finally:
                claimed.set()

        monkeypatch.setattr(first, "_claim", claim_after_the_other)
        monkeypatch.setattr(second, "_claim", claim_and_tell)
        return list(await asyncio.gather(first.tick(), second.tick()))

    assert sorted(app.client.run(both)) == [0, 1]
    assert len(app.github.calls_to("POST", f"/repos/{REPO}/deployments")) == 1
    assert len(app.statuses(PUSH_SHA)) == 1


def test_a_change_while_reporting_is_reported_next(
    app: App, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.deliver("push", payload("push.commits"))
    reporter: Reporter = app.services.reporter
    real = reporter.report
    [row] = app.deployments()

    async def report_then_start(report: Any, covered: Any) -> None:
        await real(report, covered)
        await move(str(row["id"]), [DeploymentState.QUEUED], DeploymentState.BUILDING)

    monkeypatch.setattr(reporter, "report", report_then_start)
    assert app.report() == 1
    assert reported(app) == (True, None)  # the change dropped the claim: GitHub is behind
    monkeypatch.setattr(reporter, "report", real)
    assert app.report() == 1
    assert [s["description"] for s in app.statuses(PUSH_SHA)] == [
        "Waiting for a builder…",
        "Building…",
    ]
