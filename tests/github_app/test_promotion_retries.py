"""Promotes are told to GitHub durably: the request records them and never waits on GitHub; the
reporter tells GitHub, retries a transient failure (after GitHub's wait, if it asked for one),
records a refusal without retrying it, keeps each project's promotes in order, and one replica
tells each promote once."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

import pytest

from app.reporting.reporter import Reporter
from app.settings import Settings
from app.tables import Deployment, PromotionReport
from tests.support.api import bearer
from tests.support.clock import FrozenClock
from tests.support.github_app import App
from tests.support.github_shapes import FakeDeployment
from tests.support.webhooks import payload

ROLLED_BACK = "Production rolled back to aaaaaaa"


def push(app: App, sha: str) -> dict[str, Any]:
    """Push `sha` to main, build it and tell GitHub; the deployment's row."""
    body = copy.deepcopy(payload("push.commits"))
    body["after"], body["head_commit"]["id"] = sha, sha
    app.deliver("push", body)
    app.settle()
    [row] = [row for row in app.deployments() if row["sha"] == sha]
    app.build(str(row["id"]))
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


def descriptions(deployment: FakeDeployment) -> list[str]:
    return [status["description"] for status in deployment.statuses]


def promote(app: App, token: str, row: dict[str, Any]) -> None:
    """Promote through the API only: GitHub hears of it from the reporter."""
    response = app.client.post(f"/deployments/{row['id']}/promote", headers=bearer(token))
    assert response.status_code == 200, response.text


def recorded(app: App) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = app.client.run(
        lambda: PromotionReport.select().order_by(PromotionReport._meta.primary_key)
    )
    return rows


def test_the_request_records_the_promote_and_the_reporter_tells_github(
    app: App, token: str
) -> None:
    first, second = push(app, "a" * 40), push(app, "b" * 40)
    before = len(app.github.calls)

    promote(app, token, first)

    assert app.github.calls[before:] == []  # the request never waited on GitHub
    [report] = recorded(app)
    assert (str(report["deployment"]), str(report["replaced"]), report["pinned"]) == (
        str(first["id"]),
        str(second["id"]),
        True,
    )
    assert app.report() == 1
    assert descriptions(github_deployment(app, first))[-1] == ROLLED_BACK
    assert github_deployment(app, second).statuses[-1]["state"] == "inactive"
    assert recorded(app) == []


@pytest.mark.parametrize(
    ("status", "headers", "wait"), [(502, {}, 2), (429, {"Retry-After": "30"}, 30)]
)
def test_a_transient_failure_is_retried_by_a_later_pass(
    app: App, token: str, clock: FrozenClock, status: int, headers: dict[str, str], wait: int
) -> None:
    first, second = push(app, "a" * 40), push(app, "b" * 40)
    app.github.fail("deployment_status", status=status, headers=headers, times=1, only="rolled")

    promote(app, token, first)
    assert app.report() == 0

    [report] = recorded(app)
    assert (report["attempts"], report["error_status"]) == (1, status)
    assert f"GitHub answered {status}" in report["error"]
    assert report["next_at"] == clock() + timedelta(seconds=wait)
    assert report["failed_at"] is None
    assert ROLLED_BACK not in descriptions(github_deployment(app, first))
    clock.advance(wait - 1)
    asked = len(app.github.calls)
    assert app.report() == 0
    assert len(app.github.calls) == asked  # not asked again before its time

    clock.advance(1)
    assert app.report() == 1

    assert descriptions(github_deployment(app, first))[-1] == ROLLED_BACK
    assert github_deployment(app, first).statuses[-1]["state"] == "success"
    assert github_deployment(app, second).statuses[-1]["state"] == "inactive"
    assert recorded(app) == []


def test_a_refusal_is_recorded_and_never_retried(app: App, token: str, clock: FrozenClock) -> None:
    first, second = push(app, "a" * 40), push(app, "b" * 40)
    app.github.fail(
        "deployment_status", status=422, body={"message": "Validation Failed"}, only="rolled"
    )

    promote(app, token, first)
    assert app.report() == 0

    [report] = recorded(app)
    assert report["failed_at"] == clock()
    assert report["error_status"] == 422
    assert report["error"].endswith("GitHub answered 422: Validation Failed")
    assert report["next_at"] is None
    refused = [call for call in app.github.calls if "rolled" in str(call.json)]
    clock.advance(3600)
    app.report()
    assert [call for call in app.github.calls if "rolled" in str(call.json)] == refused
    assert ROLLED_BACK not in descriptions(github_deployment(app, first))

    # It holds back no later promote of the project.
    promote(app, token, second)
    assert app.report() == 1
    assert descriptions(github_deployment(app, second))[-1] == "Production promoted bbbbbbb"
    assert [row["failed_at"] for row in recorded(app)] == [report["failed_at"]]


def test_a_projects_promotes_reach_github_in_order(
    app: App, token: str, clock: FrozenClock
) -> None:
    first, second = push(app, "a" * 40), push(app, "b" * 40)
    app.github.fail("deployment_status", status=502, times=1, only="rolled")
    promote(app, token, first)
    assert app.report() == 0
    promote(app, token, second)  # back to the newest, while the rollback is still to be told

    assert app.report() == 0  # the promote waits for the rollback before it
    clock.advance(2)
    assert app.report() == 1
    assert app.report() == 1

    old, new = github_deployment(app, first), github_deployment(app, second)
    assert descriptions(old)[-2:] == [ROLLED_BACK, "Production moved to bbbbbbb"]
    assert old.statuses[-1]["state"] == "inactive"
    assert descriptions(new)[-1] == "Production promoted bbbbbbb"
    assert new.statuses[-1]["state"] == "success"
    assert recorded(app) == []


def test_two_replicas_tell_github_of_a_promote_once(
    app: App, token: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = push(app, "a" * 40)
    push(app, "b" * 40)
    promote(app, token, first)
    one: Reporter = app.services.reporter
    other = Reporter(settings, app.services.github)
    one_claim, other_claim = one.promotions._claim, other.promotions._claim

    async def both() -> list[int]:
        # Both passes read the report before either claims it; the other claims first.
        claimed = asyncio.Event()

        async def claim_after_the_other(pending: Any) -> str | None:
            await claimed.wait()
            return await one_claim(pending)

        async def claim_first(pending: Any) -> str | None:
            try:
                return await other_claim(pending)
            finally:
                claimed.set()

        monkeypatch.setattr(one.promotions, "_claim", claim_after_the_other)
        monkeypatch.setattr(other.promotions, "_claim", claim_first)
        return list(await asyncio.gather(one.tick(), other.tick()))

    assert sorted(app.client.run(both)) == [0, 1]
    assert descriptions(github_deployment(app, first)).count(ROLLED_BACK) == 1
