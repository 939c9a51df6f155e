"""What GitHub is told of a skipped build: a successful check saying why, no live GitHub
Deployment, and the pull request comment's row."""

from __future__ import annotations

import json

from app.deployments.lifecycle import DeploymentState
from app.reporting.phases import to_github_deployment_state, to_github_state
from tests.support.deployments import FakeRunner, skip, tick
from tests.support.github_app import PR_SHA, PUSH_SHA, App, deployment_urls, pr_event, reported
from tests.support.webhooks import REPO, payload

WHY = "previews are off for branch changes (it matches exclude 'chang*')"


def test_a_skipped_state_is_a_success_and_an_inactive_deployment() -> None:
    assert to_github_state(DeploymentState.SKIPPED) == "success"
    assert to_github_deployment_state(DeploymentState.SKIPPED) == "inactive"


def test_a_skipped_preview_passes_its_check_and_says_so(
    app: App, token: str, runner: FakeRunner
) -> None:
    app.deliver("pull_request", pr_event("opened"))
    app.settle()  # GitHub hears of it building: its GitHub Deployment exists
    [deployment] = app.deployments()

    skip(app.client, runner, str(deployment["id"]), json.dumps({"reason": WHY}).encode())
    app.settle()

    _, log_url = deployment_urls(app, deployment)
    assert app.statuses(PR_SHA)[-1] == {
        "state": "success",  # a required check does not block the pull request
        "context": "scalemesh/web",
        "description": f"Skipped: {WHY}",
        "target_url": log_url,
    }
    [github_deployment] = app.github.deployments.values()
    assert github_deployment.statuses[-1]["state"] == "inactive"
    assert github_deployment.statuses[-1]["description"] == f"Skipped: {WHY}"
    [comment] = app.github.comments_on(REPO, 2)
    assert "| **web** | ⏭️ Skipped | — |" in comment.body
    assert reported(app) == (False, "skipped")


def test_no_github_deployment_is_made_for_a_build_first_reported_skipped(
    app: App, token: str, runner: FakeRunner
) -> None:
    app.deliver("push", payload("push.commits"))
    tick(app.client)  # building, GitHub not told yet
    [deployment] = app.deployments()

    skip(app.client, runner, str(deployment["id"]), b'{"reason": "nothing changed"}')
    app.settle()

    assert app.github.deployments == {}
    assert app.statuses(PUSH_SHA)[-1]["state"] == "success"
    assert app.statuses(PUSH_SHA)[-1]["description"] == "Skipped: nothing changed"
