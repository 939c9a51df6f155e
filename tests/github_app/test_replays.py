"""Old pushes never move production: a signed body replayed under a new delivery id is a
no-op, and a push whose commit is no longer its branch's head builds nothing."""

from __future__ import annotations

from typing import Any

from app.deployments import triggers
from app.tables import Alias, WebhookDelivery
from tests.support.github_app import App
from tests.support.pages import HTML, browser_login, csrf_of
from tests.support.webhooks import REPO_ID, payload

OLD_SHA = "a" * 40
NEW_SHA = "b" * 40


def push_of(sha: str) -> dict[str, Any]:
    body = payload("push.commits")
    body["after"] = sha
    return body


def production_sha(app: App) -> str:
    row = app.client.run(
        lambda: Alias.select(Alias.deployment.sha).where(Alias.hostname == "web").first()
    )
    assert row is not None
    return str(row["deployment.sha"])


def build_everything(app: App) -> None:
    """Start whatever is queued and let every build succeed, as the builders would."""
    app.settle()
    for deployment in app.deployments():
        if deployment["state"] == "building":
            app.build(str(deployment["id"]))


def test_a_replayed_body_under_a_new_delivery_id_is_not_processed_again(
    app: App, token: str
) -> None:
    old = push_of(OLD_SHA)
    app.deliver("push", old)
    app.deliver("push", push_of(NEW_SHA))  # supersedes the old build before it starts
    build_everything(app)
    assert production_sha(app) == NEW_SHA
    deliveries = app.client.run(lambda: WebhookDelivery.count())

    # Someone who kept the signed body sends it again under a fresh id (the branch has moved).
    replay = app.deliver("push", old, move_head=False)

    assert replay.status_code == 200
    assert replay.json() == {"status": "duplicate"}
    assert app.client.run(lambda: WebhookDelivery.count()) == deliveries
    build_everything(app)
    assert [d["sha"] for d in app.deployments()] == [OLD_SHA, NEW_SHA]
    assert production_sha(app) == NEW_SHA


def test_a_push_delivered_after_a_newer_one_does_not_move_production(app: App, token: str) -> None:
    app.deliver("push", push_of(NEW_SHA))
    build_everything(app)
    assert production_sha(app) == NEW_SHA

    # The older push's delivery arrives late: GitHub's branch already points at the new one.
    late = app.deliver("push", push_of(OLD_SHA), move_head=False)

    assert late.status_code == 202
    row = app.client.run(
        lambda: (
            WebhookDelivery.select(WebhookDelivery.outcome)
            .where(WebhookDelivery.event == "push")
            .order_by(WebhookDelivery.received_at, ascending=False)
            .first()
        )
    )
    assert row["outcome"] == f"ignored: {OLD_SHA[:12]} is no longer the head of main"
    build_everything(app)
    assert [d["sha"] for d in app.deployments()] == [NEW_SHA]
    assert production_sha(app) == NEW_SHA


def test_a_push_to_a_branch_deleted_since_builds_nothing(app: App, token: str) -> None:
    app.deliver("push", push_of(NEW_SHA), move_head=False)  # the fake has no branch `main`
    build_everything(app)
    assert app.deployments() == []


def test_a_push_of_a_commit_already_built_asks_github_nothing(app: App, token: str) -> None:
    app.deliver("push", push_of(NEW_SHA))
    asked = len(app.github.calls_to("GET", "/repos/Codertocat/Hello-World/branches/main"))
    again = push_of(NEW_SHA)
    again["forced"] = True  # another body (a force-push back to it), the same commit

    app.deliver("push", again)

    assert len(app.github.calls_to("GET", "/repos/Codertocat/Hello-World/branches/main")) == asked
    assert [d["sha"] for d in app.deployments()] == [NEW_SHA]


def test_the_trigger_itself_queues_a_commit_once_per_branch(app: App, token: str) -> None:
    engine = app.services.deliveries.context.engine

    def deploy() -> list[str]:
        queued: list[str] = app.client.run(
            lambda: triggers.deploy_branch(engine, REPO_ID, "main", NEW_SHA, "message")
        )
        return queued

    assert len(deploy()) == 1
    assert deploy() == []  # two handlers racing for one push queue one build


def test_a_dead_letter_retried_after_the_branch_moved_does_not_move_production(
    app: App, token: str
) -> None:
    app.github.fail("get_branch", status=403)  # refused for good: a dead letter at once
    app.deliver("push", push_of(OLD_SHA), delivery="old-push")
    app.github.heal()
    app.deliver("push", push_of(NEW_SHA))
    build_everything(app)
    assert production_sha(app) == NEW_SHA

    # An admin retries the old push, long after the branch moved on.
    browser_login(app.client)
    page = app.client.get("/deliveries", headers=HTML)
    retried = app.client.post(
        "/ui/deliveries/old-push/retry", data={"csrf": csrf_of(page.text)}, follow_redirects=False
    )
    assert retried.status_code == 303
    app.client.run(app.services.deliveries.drain)

    row = app.client.run(
        lambda: (
            WebhookDelivery.select(WebhookDelivery.outcome, WebhookDelivery.dead_at)
            .where(WebhookDelivery.delivery_id == "old-push")
            .first()
        )
    )
    assert row == {
        "outcome": f"ignored: {OLD_SHA[:12]} is no longer the head of main",
        "dead_at": None,
    }
    build_everything(app)
    assert [d["sha"] for d in app.deployments()] == [NEW_SHA]
    assert production_sha(app) == NEW_SHA
