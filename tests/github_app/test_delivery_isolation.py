"""What other accounts, repositories and installations can do to webhook deliveries: nothing.

A non-admin neither reads nor retries a dead letter; a forged body leaves no trace that would
make the genuine delivery a replay; an installation GitHub rate-limits holds back no other's
deliveries, and each push is checked against GitHub as the installation covering its repository.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from app.tables import WebhookDelivery
from tests.support.api import sign_up
from tests.support.github_app import App, post_raw
from tests.support.other_tenant import (
    OTHER_INSTALLATION,
    OTHER_REPO,
    OTHER_SHA,
    add_other_tenant,
    installation_of,
    other_push,
)
from tests.support.pages import HTML, browser_login, csrf_of
from tests.support.webhooks import REPO, payload, signature


def deliveries(app: App, event: str = "push") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = app.client.run(
        lambda: (
            WebhookDelivery.select()
            .where(WebhookDelivery.event == event)
            .order_by(WebhookDelivery.received_at)
        )
    )
    return found


def test_a_non_admin_neither_sees_nor_retries_a_dead_letter(app: App, token: str) -> None:
    app.github.fail("get_branch", status=403)  # refused for good: a dead letter at once
    app.deliver("push", payload("push.commits"), delivery="ada-delivery")
    [dead] = deliveries(app)
    assert dead["dead_at"] is not None
    app.github.heal()

    sign_up(app.client, "mallory@example.com")
    browser_login(app.client, "mallory@example.com")
    page = app.client.get("/deliveries", headers=HTML)
    assert page.status_code == 403
    assert "ada-delivery" not in page.text
    assert REPO not in page.text
    home = app.client.get("/", headers=HTML)
    refused = app.client.post(
        "/ui/deliveries/ada-delivery/retry",
        data={"csrf": csrf_of(home.text)},
        follow_redirects=False,
    )
    assert refused.status_code == 403
    app.client.run(app.services.deliveries.drain)
    [still] = deliveries(app)
    assert (still["dead_at"], still["attempts"]) == (dead["dead_at"], 1)
    assert app.deployments() == []


def test_signed_out_the_dead_letters_are_not_served(app: App, token: str) -> None:
    app.github.fail("get_branch", status=403)
    app.deliver("push", payload("push.commits"), delivery="ada-delivery")
    page = app.client.get("/deliveries", headers=HTML, follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=/deliveries")
    assert "ada-delivery" not in page.text
    retry = app.client.post("/ui/deliveries/ada-delivery/retry", data={}, follow_redirects=False)
    assert retry.status_code == 303
    assert retry.headers["location"].startswith("/login")
    assert deliveries(app)[0]["dead_at"] is not None


def test_a_forged_body_leaves_no_hash_behind_so_the_genuine_delivery_runs(
    app: App, token: str
) -> None:
    body = payload("push.commits")
    raw = json.dumps(body).encode()
    forged = post_raw(
        app.client,
        raw,
        **{
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "forged",
            "X-Hub-Signature-256": signature(raw, "not-the-secret"),
        },
    )
    assert forged.status_code == 401
    assert deliveries(app) == []

    genuine = app.deliver("push", raw)

    assert genuine.status_code == 202
    assert genuine.json() == {"status": "accepted"}
    [row] = deliveries(app)
    assert row["outcome"] == "queued 1 deployments"
    assert len(app.deployments()) == 1


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
    assert installation_of(app.github, asked) == OTHER_INSTALLATION
