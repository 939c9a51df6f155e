"""Closing a pull request tears its preview down after `SCALEMESH_PREVIEW_TTL_AFTER_CLOSE` (7
days): its branch alias goes, its files go, its URL answers 410, GitHub's Deployment ends
`inactive` and the comment says it was removed; reopening builds it again. An idle preview past
`previews.ttlDays` goes the same way, and the comment says how to bring it back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from app.reporting.comment import MARKER
from app.retention.wording import removed_row_text
from app.tables import Alias, Deployment
from builder.spec import output_prefix
from tests.support.deployments import tick
from tests.support.github_app import App, delete_event, pr_event, retention_at
from tests.support.webhooks import REPO, payload


def files_of(app: App, deployment: dict[str, object]) -> list[str]:
    storage = app.services.reconciler.storage
    prefix = output_prefix(int(str(deployment["project"])), str(deployment["id"]))
    found: list[str] = app.client.run(lambda: storage.list(prefix))
    return found


def test_a_closed_pull_request_is_torn_down_after_seven_days(app: App, token: str) -> None:
    app.deliver("pull_request", pr_event("opened"))
    tick(app.client)
    [deployment] = app.deployments()
    app.build(str(deployment["id"]))
    assert files_of(app, deployment)

    app.deliver("pull_request", payload("pull_request.closed.merged"))
    app.report()
    now = datetime.now(UTC)
    app.client.run(retention_at(app, now + timedelta(days=6)).run)
    [row] = app.deployments()
    assert row["retired"]
    assert row["pruned_at"] is None
    assert files_of(app, deployment)

    app.client.run(retention_at(app, now + timedelta(days=7, minutes=2)).run)
    app.report()

    [row] = app.deployments()
    assert row["pruned_at"] is not None
    assert not files_of(app, deployment)
    hostnames = app.client.run(
        lambda: (
            Alias.select(Alias.hostname).where(Alias.deployment == row["id"]).output(as_list=True)
        )
    )
    assert all("-git-" not in name for name in hostnames)  # the branch label went
    for made in app.github.deployments.values():
        assert made.statuses[-1]["state"] == "inactive"
    [comment] = app.github.comments_on(REPO, 2)
    assert comment.body.startswith(MARKER)
    assert removed_row_text() in comment.body

    # Reopened: built again, a new deployment.
    app.deliver("pull_request", pr_event("reopened"))
    tick(app.client)
    newest = app.deployments()[-1]
    assert newest["id"] != row["id"]
    assert newest["state"] in ("queued", "building")


def test_an_idle_preview_past_its_ttl_is_torn_down(app: App, token: str) -> None:
    app.deliver("pull_request", pr_event("opened"))
    tick(app.client)
    [deployment] = app.deployments()
    app.build(str(deployment["id"]))
    config = {
        "file": "scalemesh.json",
        "fields": {
            "previews": {
                "value": {"enabled": True, "include": [], "exclude": [], "ttlDays": 3},
                "source": "scalemesh.json",
            }
        },
        "env": {},
        "warnings": [],
    }
    app.client.run(
        lambda: Deployment.update({Deployment.config: json.dumps(config)}).where(
            Deployment.id == deployment["id"]
        )
    )
    made = deployment["created_at"]

    app.client.run(retention_at(app, made + timedelta(days=2)).run)
    assert app.deployments()[0]["pruned_at"] is None
    app.client.run(retention_at(app, made + timedelta(days=3, minutes=1)).run)
    app.report()

    [row] = app.deployments()
    assert row["pruned_at"] is not None
    assert row["retired"]
    [comment] = app.github.comments_on(REPO, 2)
    assert "push again to bring it back" in comment.body


def test_a_deleted_branch_is_torn_down_after_seven_days(app: App, token: str) -> None:
    app.deliver("pull_request", pr_event("opened"))
    tick(app.client)
    [deployment] = app.deployments()
    app.build(str(deployment["id"]))

    tag = app.deliver("delete", delete_event("v1.0", "tag"))
    app.deliver("delete", delete_event("changes"))
    app.report()
    now = datetime.now(UTC)
    app.client.run(retention_at(app, now + timedelta(days=7, minutes=2)).run)

    assert tag.status_code in (200, 202)
    [row] = app.deployments()
    assert row["retired"]
    assert row["pruned_at"] is not None
    assert not files_of(app, deployment)


def test_a_delete_from_a_repository_without_the_app_changes_nothing(app: App, token: str) -> None:
    event = delete_event("changes")
    event.pop("installation")
    event["repository"] = {**event["repository"], "id": 424242}  # type: ignore[dict-item]
    app.deliver("pull_request", pr_event("opened"))

    app.deliver("delete", event)

    assert not any(row["retired"] for row in app.deployments())
