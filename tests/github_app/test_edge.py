"""The webhook edge and worker: what the App subscribes to, which deliveries are taken, and how."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from app.asgi import create_app, webhook_router
from app.github.client import GitHubAppClient
from app.settings import Settings
from app.tables import (
    Repository,
    WebhookDelivery,
)
from tests.support.api import Client
from tests.support.deployments import FakeRunner
from tests.support.github_app import (
    ROOT,
    App,
    post_raw,
    push_to,
)
from tests.support.github_fake import WEBHOOK_SECRET, FakeGitHubApi
from tests.support.webhooks import REPO, payload, signature


def test_app_yml_subscribes_to_exactly_the_handled_events() -> None:
    manifest = yaml.safe_load((ROOT / "app.yml").read_text())
    assert set(manifest["default_events"]) == webhook_router().events()
    assert len(manifest["default_events"]) == len(set(manifest["default_events"]))


def test_app_yml_asks_for_the_least_permissions() -> None:
    manifest = yaml.safe_load((ROOT / "app.yml").read_text())
    assert manifest["default_permissions"] == {
        "contents": "read",
        "metadata": "read",
        "statuses": "write",
        "deployments": "write",
        "pull_requests": "write",
    }
    assert manifest["hook_attributes"]["url"].endswith("/github/webhooks")
    assert manifest["name"]
    assert manifest["url"]


def test_every_line_of_app_yml_is_explained() -> None:
    lines = (ROOT / "app.yml").read_text().splitlines()
    keys = [i for i, line in enumerate(lines) if line and not line.startswith((" ", "#"))]
    for index in keys:
        if lines[index].startswith(("default_events", "default_permissions", "hook_attributes")):
            continue
        assert lines[index - 1].startswith("#"), lines[index]
    permissions = lines.index("default_permissions:")
    for index in range(permissions + 1, len(lines)):
        if lines[index].startswith("  ") and not lines[index].lstrip().startswith("#"):
            assert lines[index - 1].lstrip().startswith("#"), lines[index]


def test_a_delivery_without_a_signature_is_refused(app: App) -> None:
    body = json.dumps(payload("push.commits")).encode()
    response = post_raw(app.client, body, **{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert app.client.run(lambda: WebhookDelivery.count()) == 0


@pytest.mark.parametrize(
    "make_signature",
    [
        lambda body: signature(body, "not-the-secret"),
        lambda body: signature(body + b" "),
        lambda body: "sha256=zz",
        # The sha1 form, even correctly computed, is never accepted.
        lambda body: "sha1=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha1).hexdigest(),
    ],
    ids=["wrong-secret", "other-body", "garbage", "sha1"],
)
def test_a_delivery_with_a_bad_signature_is_refused(
    app: App, make_signature: Callable[[bytes], str]
) -> None:
    body = json.dumps(payload("push.commits")).encode()
    response = post_raw(
        app.client,
        body,
        **{
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": make_signature(body),
        },
    )
    assert response.status_code == 401
    assert app.client.run(lambda: WebhookDelivery.count()) == 0
    assert app.github.calls == []


def test_the_endpoint_answers_503_when_github_is_not_configured(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(SCALEMESH_DATABASE_URL=database_url)
    with Client(create_app(settings, reconcile=False)) as client:
        body = json.dumps(payload("ping")).encode()
        response = post_raw(
            client,
            body,
            **{
                "X-GitHub-Event": "ping",
                "X-GitHub-Delivery": "d-1",
                "X-Hub-Signature-256": signature(body),
            },
        )
    assert response.status_code == 503
    assert "SCALEMESH_GITHUB_WEBHOOK_SECRET" in response.json()["detail"]


def test_a_delivery_over_25_mib_is_refused(app: App) -> None:
    body = b'{"zen": "' + b"x" * (25 * 1024 * 1024) + b'"}'
    response = post_raw(
        app.client,
        body,
        **{
            "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": signature(body),
        },
    )
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]"], ids=["broken", "not-an-object"])
def test_a_malformed_delivery_is_a_400(app: App, body: bytes) -> None:
    response = post_raw(
        app.client,
        body,
        **{
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": signature(body),
        },
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_headers_github_always_sends_are_required(app: App) -> None:
    body = json.dumps(payload("ping")).encode()
    response = post_raw(app.client, body, **{"X-Hub-Signature-256": signature(body)})
    assert response.status_code == 400
    assert "X-GitHub-Delivery" in response.json()["detail"]


def test_ping_is_answered(app: App) -> None:
    response = app.deliver("ping", payload("ping"))
    assert response.status_code == 200
    assert response.json() == {"status": "pong"}


def test_an_event_we_do_not_handle_is_acknowledged_and_recorded(app: App) -> None:
    response = app.deliver("star", {"action": "created", "starred_at": None}, delivery="d-star")
    assert response.status_code == 202
    assert response.json() == {"status": "ignored"}
    row = app.client.run(lambda: WebhookDelivery.select().first())
    assert (row["delivery_id"], row["event"], row["action"]) == ("d-star", "star", "created")
    assert row["processed_at"] is not None
    assert row["outcome"] == "ignored: not handled"


def test_a_redelivery_does_nothing_more(app: App, token: str) -> None:
    body = payload("push.commits")
    first = app.deliver("push", body, delivery="same-guid")
    again = app.deliver("push", body, delivery="same-guid")
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate"}
    assert len(app.deployments()) == 1
    assert app.client.run(lambda: WebhookDelivery.count()) == 2  # installation + push


def test_a_delivery_stored_but_never_processed_is_processed_at_start(
    settings: Settings, github: FakeGitHubApi
) -> None:
    assert settings.github is not None
    body = json.dumps(payload("installation.created")).encode()
    with Client(create_app(settings, reconcile=False)) as client:
        client.run(
            lambda: WebhookDelivery.insert(
                WebhookDelivery(
                    delivery_id="crashed",
                    event="installation",
                    action="created",
                    payload=body.decode(),
                )
            )
        )
    api = GitHubAppClient(settings.github, github.base_url, transport=github.transport)
    # A restart: the app's own loops run this time.
    with Client(create_app(settings, runner=FakeRunner(), github=api)) as client:

        async def processed() -> Any:
            await client.app.state.services.deliveries.idle.wait()
            return await WebhookDelivery.select().first()

        row = client.run(processed)
        assert row["processed_at"] is not None
        assert row["outcome"].startswith("installed on Codertocat")
        assert client.run(lambda: Repository.select(Repository.full_name)) == [{"full_name": REPO}]


def test_a_payload_no_view_reads_is_a_dead_letter_at_once(app: App) -> None:
    body = payload("push.commits")
    del body["repository"]  # a payload our view cannot read: running it again cannot help
    assert app.deliver("push", body, delivery="broken").status_code == 202
    row = app.client.run(lambda: WebhookDelivery.select().first())
    assert row["processed_at"] is None
    assert row["dead_at"] is not None
    assert row["attempts"] == 1
    assert row["last_error"].startswith("ValidationError: ")
    assert row["claimed_until"] is None


def test_the_worker_outlives_a_database_error(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = app.services.deliveries

    async def broken(*queued: object) -> None:
        raise RuntimeError("database is away")

    monkeypatch.setattr(worker, "_take", broken)

    async def run_once() -> None:
        task = asyncio.create_task(worker.run())
        worker.submit("x", datetime.now(UTC))
        await worker.idle.wait()
        task.cancel()

    app.client.run(run_once)
    assert worker.idle.is_set()


def test_the_worker_skips_unknown_and_finished_deliveries(app: App) -> None:
    worker = app.services.deliveries
    app.deliver("star", {"action": "created"}, delivery="done")
    worker.submit("no-such-delivery", datetime.now(UTC))
    worker.submit("done", datetime.now(UTC))
    app.client.run(worker.drain)
    row = app.client.run(lambda: WebhookDelivery.select().first())
    assert row["outcome"] == "ignored: not handled"
    assert row["attempts"] == 0


def test_dispatch_ignores_an_event_without_a_handler(app: App) -> None:
    context = app.services.deliveries.context
    router = app.services.deliveries.router
    outcome = app.client.run(lambda: router.dispatch(context, "star", b'{"action": "created"}'))
    assert outcome == "ignored: not handled"


def test_the_worker_processes_everything_queued(app: App, token: str) -> None:
    worker = app.services.deliveries
    bodies = [payload("push.commits"), payload("push.commits")]
    bodies[1]["ref"] = "refs/heads/release"
    for index, body in enumerate(bodies):
        push_to(app.github, body)
        response = app.client.post(
            "/github/webhooks",
            content=json.dumps(body).encode(),
            headers={
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": f"queued-{index}",
                "X-Hub-Signature-256": signature(json.dumps(body).encode()),
            },
        )
        assert response.status_code == 202

    async def run_until_idle() -> None:
        task = asyncio.create_task(worker.run())
        await worker.idle.wait()
        task.cancel()

    app.client.run(run_until_idle)
    assert len(app.deployments()) == 2
