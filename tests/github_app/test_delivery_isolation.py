"""What other accounts, repositories and installations can do to webhook deliveries: nothing.

A non-admin neither reads nor retries a dead letter; a forged body leaves no trace that would
make the genuine delivery a replay; an installation GitHub rate-limits holds back no other's
deliveries, and each push is checked against GitHub as the installation covering its repository.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.tables import WebhookDelivery
from tests.support.api import bearer, sign_up
from tests.support.binding import bind
from tests.support.github_app import App
from tests.support.webhooks import INSTALLATION, payload

OTHER_INSTALLATION = INSTALLATION + 1
OTHER_REPO = "octo-org/other-site"
OTHER_REPO_ID = 4242424
OTHER_SHA = "c" * 40


def deliveries(app: App, event: str = "push") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = app.client.run(
        lambda: (
            WebhookDelivery.select()
            .where(WebhookDelivery.event == event)
            .order_by(WebhookDelivery.received_at)
        )
    )
    return found


def add_other_tenant(app: App) -> None:
    """Bob's project on another repository, covered by another installation of the App."""
    bob = sign_up(app.client, "bob@example.com")
    created = app.client.post(
        "/project",
        json={"name": "other", "repo": OTHER_REPO, "production_branch": "main"},
        headers=bearer(bob),
    )
    assert created.status_code == 201, created.text
    bind(app.client, "other", OTHER_REPO_ID)
    installed = payload("installation.created")
    installed["installation"]["id"] = OTHER_INSTALLATION
    installed["installation"]["account"]["login"] = "octo-org"
    installed["repositories"] = [
        {
            "id": OTHER_REPO_ID,
            "node_id": "R_other",
            "name": "other-site",
            "full_name": OTHER_REPO,
            "private": True,
        }
    ]
    assert app.deliver("installation", installed).status_code == 202


def other_push(sha: str) -> dict[str, Any]:
    body = payload("push.commits")
    body["installation"]["id"] = OTHER_INSTALLATION
    body["after"] = sha
    repository = body["repository"]
    repository.update(
        id=OTHER_REPO_ID,
        name="other-site",
        full_name=OTHER_REPO,
        private=True,
        clone_url=f"https://github.com/{OTHER_REPO}.git",
    )
    repository["owner"]["login"] = "octo-org"
    return body


def test_a_rate_limited_installation_holds_back_no_other(app: App, token: str) -> None:
    add_other_tenant(app)
    # GitHub rate-limits Ada's installation for an hour (the branch check of her push).
    app.github.fail("get_branch", status=429, headers={"Retry-After": "3600"}, only="Hello-World")
    before = datetime.now(UTC)
    app.deliver("push", payload("push.commits"))
    [held] = deliveries(app)
    assert (held["processed_at"], held["dead_at"], held["attempts"]) == (None, None, 1)
    # Its next attempt waits for GitHub, rather than spend attempts on refused calls.
    assert held["next_attempt_at"] >= before + timedelta(seconds=3600)

    # Bob's push, delivered meanwhile, is checked and built at once.
    app.deliver("push", other_push(OTHER_SHA))
    [_, bobs] = deliveries(app)
    assert bobs["outcome"] == "queued 1 deployments"
    [deployment] = app.deployments()
    assert deployment["sha"] == OTHER_SHA

    # Bob's branch was read with a token of his installation, never Ada's.
    [asked] = app.github.calls_to("GET", f"/repos/{OTHER_REPO}/branches/main")
    [minted] = [t for t in app.github.tokens if asked.authorization == f"token {t.token}"]
    assert minted.installation_id == OTHER_INSTALLATION
