"""Promote and rollback told to GitHub: the deployment production now serves gets a `success`
status in Production, the one it replaced becomes `inactive`; builds held back by a pin are
not shown as production."""

from __future__ import annotations

import copy
from typing import Any

from app.tables import Deployment, Project, PromotionReport
from tests.support.api import bearer
from tests.support.github_app import App
from tests.support.github_shapes import FakeDeployment
from tests.support.webhooks import payload

PRODUCTION_URL = "http://web.localhost:8080"


def push(app: App, sha: str, branch: str = "main") -> dict[str, Any]:
    """Push `sha` to `branch`, build it and tell GitHub; the deployment's row."""
    body = copy.deepcopy(payload("push.commits"))
    body["after"], body["ref"] = sha, f"refs/heads/{branch}"
    body["head_commit"]["id"] = sha
    app.deliver("push", body)
    app.settle()
    [row] = [row for row in app.deployments() if row["sha"] == sha]
    app.build(str(row["id"]))
    [row] = [row for row in app.deployments() if row["sha"] == sha]
    return row


def github_deployment(app: App, row: dict[str, Any]) -> FakeDeployment:
    found = app.client.run(
        lambda: (
            Deployment.select(Deployment.github_deployment_id)
            .where(Deployment.id == row["id"])
            .first()
        )
    )
    return app.github.deployments[int(found["github_deployment_id"])]


def promote(app: App, token: str, row: dict[str, Any]) -> None:
    """Promote through the API, then let the reporter tell GitHub."""
    response = app.client.post(f"/deployments/{row['id']}/promote", headers=bearer(token))
    assert response.status_code == 200, response.text
    app.report()


def test_a_rollback_and_a_promote_move_githubs_production(app: App, token: str) -> None:
    first = push(app, "a" * 40)
    second = push(app, "b" * 40)
    assert github_deployment(app, second).statuses[-1]["state"] == "success"
    promote(app, token, second)  # already production: told again, nothing replaced
    assert github_deployment(app, second).statuses[-1]["description"] == (
        "Production promoted bbbbbbb"
    )
    assert github_deployment(app, first).statuses[-1]["state"] == "success"  # untouched

    promote(app, token, first)  # a rollback

    old, new = github_deployment(app, first), github_deployment(app, second)
    assert old.statuses[-1]["state"] == "success"
    assert old.statuses[-1]["environment_url"] == PRODUCTION_URL
    assert old.statuses[-1]["description"] == "Production rolled back to aaaaaaa"
    assert new.statuses[-1]["state"] == "inactive"
    assert len(app.github.deployments) == 2  # no new GitHub Deployment for known ones

    third = push(app, "c" * 40)  # held back by the pin: GitHub must not show it as production
    held = github_deployment(app, third)
    assert held.statuses[-1]["state"] == "inactive"
    assert "environment_url" not in held.statuses[-1] or not held.statuses[-1]["environment_url"]
    assert old.statuses[-1]["state"] == "success"

    promote(app, token, third)  # the newest: unpinned

    assert held.statuses[-1]["state"] == "success"
    assert held.statuses[-1]["description"] == "Production promoted ccccccc"
    assert old.statuses[-1]["state"] == "inactive"


def test_unpinning_is_told_as_a_promote(app: App, token: str) -> None:
    first = push(app, "a" * 40)
    second = push(app, "b" * 40)
    promote(app, token, first)

    response = app.client.delete("/projects/web/production-pin", headers=bearer(token))
    app.report()

    assert response.status_code == 200
    assert github_deployment(app, second).statuses[-1]["state"] == "success"
    assert github_deployment(app, first).statuses[-1]["state"] == "inactive"


def test_a_promoted_preview_gets_a_github_deployment_in_production(app: App, token: str) -> None:
    production = push(app, "a" * 40)
    preview = push(app, "e" * 40, branch="feature/login")
    before = set(app.github.deployments)

    promote(app, token, preview)

    [created] = [app.github.deployments[key] for key in set(app.github.deployments) - before]
    assert created.request["environment"] == "Production"
    assert created.request["ref"] == "e" * 40
    assert created.statuses[-1]["state"] == "success"
    assert created.statuses[-1]["environment_url"] == PRODUCTION_URL
    assert github_deployment(app, production).statuses[-1]["state"] == "inactive"
    # The preview keeps its own GitHub Deployment in its own environment.
    assert github_deployment(app, preview).statuses[-1]["state"] == "success"

    promote(app, token, production)  # back: the one the last promote reported goes inactive
    assert created.statuses[-1]["state"] == "inactive"


def test_a_deployment_github_never_heard_of_gets_one(app: App, token: str) -> None:
    first = push(app, "a" * 40)
    push(app, "b" * 40)
    app.client.run(
        lambda: Deployment.update({Deployment.github_deployment_id: None}).where(
            Deployment.id == first["id"]
        )
    )
    before = set(app.github.deployments)

    promote(app, token, first)

    [created] = [app.github.deployments[key] for key in set(app.github.deployments) - before]
    assert created.statuses[-1]["state"] == "success"
    assert github_deployment(app, first) is created  # kept: the reporter will not add another


def test_a_github_failure_does_not_undo_the_rollback(app: App, token: str) -> None:
    first = push(app, "a" * 40)
    push(app, "b" * 40)
    app.github.fail("deployment_status", status=502)

    promote(app, token, first)

    pinned = app.client.run(
        lambda: Project.select(Project.production_pinned_to).where(Project.slug == "web").first()
    )
    assert str(pinned["production_pinned_to"]) == str(first["id"])


def test_an_unbound_projects_promote_is_not_reported(app: App, token: str) -> None:
    first = push(app, "a" * 40)
    push(app, "b" * 40)
    app.client.run(
        lambda: Project.update({Project.github_repository_id: None}).where(Project.slug == "web")
    )
    before = len(app.github.calls)

    promote(app, token, first)

    assert app.github.calls[before:] == []  # nobody to tell: the record is settled
    assert app.client.run(PromotionReport.count) == 0
