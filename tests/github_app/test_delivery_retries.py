"""Deliveries are not lost: a handler that fails for now is retried with backoff, one that keeps
failing is a dead letter an admin sees and retries, and any replica takes over a delivery whose
claim ran out."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.asgi import webhook_router
from app.health import counted
from app.tables import WebhookDelivery
from app.webhooks.worker import MAX_ATTEMPTS, DeliveryWorker
from tests.support.api import sign_up
from tests.support.github_app import PUSH_SHA, App, push_to
from tests.support.pages import HTML, browser_login, csrf_of
from tests.support.webhooks import payload, signature


def rows(app: App) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = app.client.run(
        lambda: WebhookDelivery.select().order_by(WebhookDelivery.received_at)
    )
    return found


def push_row(app: App) -> dict[str, Any]:
    [row] = [row for row in rows(app) if row["event"] == "push"]
    return row


def later(worker: DeliveryWorker, seconds: float) -> datetime:
    """Move the worker's clock `seconds` ahead of now; return that moment."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    worker.now = lambda: moment
    return moment


def sweep(app: App) -> int:
    worker = app.services.deliveries
    taken: int = app.client.run(worker.recover)
    app.client.run(worker.drain)
    return taken


def test_a_transient_handler_error_is_retried_with_backoff_then_processed(
    app: App, token: str
) -> None:
    worker = app.services.deliveries
    app.github.fail("get_branch", status=502)  # GitHub cannot say where the branch is now

    assert app.deliver("push", payload("push.commits")).status_code == 202
    first = push_row(app)
    assert (first["processed_at"], first["dead_at"], first["claimed_until"]) == (None, None, None)
    assert first["attempts"] == 1
    assert "502" in first["last_error"]
    wait = first["next_attempt_at"] - datetime.now(UTC)
    assert timedelta(seconds=8) < wait <= timedelta(seconds=10)
    assert app.deployments() == []
    assert sweep(app) == 0  # not due yet

    moment = later(worker, 11)
    assert sweep(app) == 1
    second = push_row(app)
    assert second["attempts"] == 2
    assert second["next_attempt_at"] - moment == timedelta(seconds=20)  # doubled

    app.github.heal()
    later(worker, 32)
    assert sweep(app) == 1
    done = push_row(app)
    assert done["processed_at"] is not None
    assert done["outcome"] == "queued 1 deployments"
    [deployment] = app.deployments()
    assert (deployment["sha"], deployment["target"]) == (PUSH_SHA, "production")
    assert sweep(app) == 0  # processed: never taken again


def test_a_delivery_that_keeps_failing_is_a_dead_letter_an_admin_retries(
    app: App, token: str
) -> None:
    worker = app.services.deliveries
    app.github.fail("get_branch", status=503)
    app.deliver("push", payload("push.commits"))
    for attempt in range(2, MAX_ATTEMPTS + 1):
        later(worker, 3600 * attempt)
        assert sweep(app) == 1
    dead = push_row(app)
    assert dead["attempts"] == MAX_ATTEMPTS
    assert dead["dead_at"] is not None
    assert dead["processed_at"] is None
    later(worker, 3600 * 100)
    assert sweep(app) == 0  # a dead letter is never run again by itself
    assert app.client.get("/health").json()["dead_letters"] == 1

    app.github.heal()
    browser_login(app.client)
    page = app.client.get("/deliveries", headers=HTML)
    assert page.status_code == 200
    assert dead["delivery_id"] in page.text
    assert "GitHubError" in page.text
    forged = app.client.post(
        f"/ui/deliveries/{dead['delivery_id']}/retry", data={}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert push_row(app)["dead_at"] is not None

    retried = app.client.post(
        f"/ui/deliveries/{dead['delivery_id']}/retry",
        data={"csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert retried.status_code == 303
    assert retried.headers["location"] == "/deliveries"
    app.client.run(worker.drain)
    done = push_row(app)
    assert done["processed_at"] is not None
    assert (done["dead_at"], done["attempts"]) == (None, 0)
    assert len(app.deployments()) == 1
    assert app.client.get("/health").json()["dead_letters"] == 0
    assert dead["delivery_id"] not in app.client.get("/deliveries", headers=HTML).text
    # Retrying what is no longer dead does nothing.
    again = app.client.post(
        f"/ui/deliveries/{dead['delivery_id']}/retry",
        data={"csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert again.status_code == 303
    assert len(app.deployments()) == 1


def test_a_permanent_error_is_a_dead_letter_at_once(app: App, token: str) -> None:
    app.github.fail("get_branch", status=403)  # refused, and would be again
    app.deliver("push", payload("push.commits"))
    dead = push_row(app)
    assert dead["attempts"] == 1
    assert dead["dead_at"] is not None
    assert dead["next_attempt_at"] is None
    assert app.client.get("/health").json()["dead_letters"] == 1


def test_only_an_admin_sees_the_dead_letters(app: App, token: str) -> None:
    sign_up(app.client, "bob@example.com")
    browser_login(app.client, "bob@example.com")
    assert app.client.get("/deliveries", headers=HTML).status_code == 403
    page = app.client.get("/", headers=HTML)
    refused = app.client.post(
        "/ui/deliveries/any/retry", data={"csrf": csrf_of(page.text)}, follow_redirects=False
    )
    assert refused.status_code == 403


def test_the_admin_page_says_when_nothing_is_dead(app: App, token: str) -> None:
    browser_login(app.client)
    page = app.client.get("/deliveries", headers=HTML)
    assert page.status_code == 200
    assert "None: every webhook delivery" in page.text


def test_another_replica_takes_a_delivery_whose_claim_ran_out(app: App, token: str) -> None:
    body = payload("push.commits")
    push_to(app.github, body)
    raw = json.dumps(body).encode()
    # Replica A stores and claims the delivery, then dies before running it.
    response = app.client.post(
        "/github/webhooks",
        content=raw,
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "orphan",
            "X-Hub-Signature-256": signature(raw),
        },
    )
    assert response.status_code == 202
    stored = push_row(app)
    assert stored["claimed_until"] is not None
    # Replica B's worker: its own queue, claims and clock, on the same database. (Two apps
    # in one process would share Piccolo's engine binding across their event loops.)
    context = app.services.deliveries.context
    fast = dataclasses.replace(context.settings, reconcile_interval=0.05)
    worker_b = DeliveryWorker(dataclasses.replace(context, settings=fast), webhook_router())

    async def run_b(until: float) -> dict[str, Any] | None:
        """Replica B's own loop, running as in production, for `until` seconds at most."""
        task = asyncio.create_task(worker_b.run())
        try:
            deadline = time.monotonic() + until
            while time.monotonic() < deadline:
                row = await WebhookDelivery.select().where(WebhookDelivery.event == "push").first()
                if row is not None and row["processed_at"] is not None:
                    return row
                await asyncio.sleep(0.05)
            return None
        finally:
            task.cancel()

    # While A's claim holds, B leaves it alone, sweep after sweep.
    assert app.client.run(lambda: run_b(0.5)) is None
    # Once it has run out, B's next sweep takes it, without a restart.
    later(worker_b, 91)
    done = app.client.run(lambda: run_b(10))
    assert done is not None
    assert done["outcome"] == "queued 1 deployments"
    assert len(app.deployments()) == 1

    # A comes back to what it had queued: processed by B, so nothing runs twice.
    app.services.deliveries.submit("orphan", stored["claimed_until"], raw)
    app.client.run(app.services.deliveries.drain)
    assert len(app.deployments()) == 1
    assert push_row(app)["outcome"] == "queued 1 deployments"


def test_the_sweep_loop_outlives_a_database_error(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = app.services.deliveries
    settings = dataclasses.replace(worker.context.settings, reconcile_interval=0.01)
    monkeypatch.setattr(worker, "context", dataclasses.replace(worker.context, settings=settings))
    calls: list[int] = []
    swept_again = asyncio.Event()

    async def flaky() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database is away")
        swept_again.set()
        return 0

    monkeypatch.setattr(worker, "recover", flaky)

    async def run_until_swept_twice() -> None:
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(swept_again.wait(), 10)
        task.cancel()

    app.client.run(run_until_swept_twice)
    assert len(calls) >= 2


def test_without_github_a_push_is_built_as_sent(app: App, token: str) -> None:
    worker = app.services.deliveries
    worker.context = dataclasses.replace(worker.context, github=None)
    app.deliver("push", payload("push.commits"), move_head=False)
    assert push_row(app)["outcome"] == "queued 1 deployments"
    assert app.github.calls_to("GET", "/repos/Codertocat/Hello-World/branches/main") == []


def test_health_leaves_out_a_count_it_cannot_read() -> None:
    async def broken() -> int:
        raise RuntimeError("database is away")

    assert asyncio.run(counted(broken)) is None
