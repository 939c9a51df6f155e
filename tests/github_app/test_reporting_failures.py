"""Reporting failures: GitHub's waits are honoured, refusals are recorded and never retried,
and reports that keep failing do not hold back the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.reporting.reporter import BATCH
from app.tables import Deployment, Project
from tests.support.api import PASSWORD, bearer
from tests.support.clock import FrozenClock
from tests.support.deployments import tick
from tests.support.github_app import PUSH_SHA, App
from tests.support.other_tenant import (
    OTHER_INSTALLATION,
    OTHER_REPO,
    OTHER_SHA,
    add_other_tenant,
    installation_of,
    other_push,
)
from tests.support.webhooks import REPO, payload


def row(app: App) -> dict[str, Any]:
    [first] = app.deployments()
    return first


def statuses_of(app: App, sha: str) -> int:
    return len(app.github.calls_to("POST", f"/repos/{REPO}/statuses/{sha}"))


def test_a_429_with_retry_after_is_waited_out_then_succeeds(
    app: App, token: str, clock: FrozenClock
) -> None:
    app.github.fail("commit_status", status=429, headers={"Retry-After": "30"}, times=1)
    app.deliver("push", payload("push.commits"))
    assert app.report() == 0
    failed = row(app)
    assert failed["report_error_status"] == 429
    assert "GitHub answered 429" in failed["report_error"]
    assert failed["report_attempts"] == 1
    assert failed["report_next_at"] == clock() + timedelta(seconds=30)  # not 2 s: GitHub's wait
    assert failed["report_failed_at"] is None
    shown = app.client.get(f"/deployments/{failed['id']}", headers=bearer(token)).json()
    assert "GitHub answered 429" in shown["github_error"]
    assert shown["github_refused"] is False

    clock.advance(29)
    assert app.report() == 0
    assert statuses_of(app, PUSH_SHA) == 1  # GitHub was not asked again before its time

    clock.advance(1)
    assert app.report() == 1
    assert statuses_of(app, PUSH_SHA) == 2
    assert app.statuses(PUSH_SHA)[-1]["state"] == "pending"
    told = row(app)
    assert (told["report_pending"], told["reported_phase"]) == (False, "queued")
    assert (told["report_error"], told["report_attempts"], told["report_next_at"]) == (
        None,
        0,
        None,
    )
    shown = app.client.get(f"/deployments/{told['id']}", headers=bearer(token)).json()
    assert shown["github_error"] is None


def test_a_422_is_recorded_and_never_retried(app: App, token: str, clock: FrozenClock) -> None:
    app.github.fail("create_deployment", status=422, body={"message": "Validation Failed"})
    app.deliver("push", payload("push.commits"))
    deployments = f"/repos/{REPO}/deployments"
    assert app.report() == 0
    refused = row(app)
    assert refused["report_failed_at"] == clock()
    assert refused["report_error_status"] == 422
    assert refused["report_error"].endswith("GitHub answered 422: Validation Failed")
    assert refused["report_pending"] is True  # GitHub has not heard; we stopped asking

    for _ in range(3):
        clock.advance(3600)
        assert app.report() == 0
    assert len(app.github.calls_to("POST", deployments)) == 1

    shown = app.client.get(f"/deployments/{refused['id']}", headers=bearer(token)).json()
    assert shown["github_refused"] is True
    assert shown["github_error"].endswith("GitHub answered 422: Validation Failed")
    app.client.post("/user/login", json={"email": "ada@example.com", "password": PASSWORD})
    page = app.client.get(f"/ui/deployments/{refused['id']}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "GitHub refused; not retried" in page.text
    assert "Validation Failed" in page.text

    # The next change is a new report, and is tried.
    app.github.heal()
    tick(app.client)
    assert app.report() == 1
    assert len(app.github.calls_to("POST", deployments)) == 2
    told = row(app)
    assert (told["report_failed_at"], told["report_error"], told["reported_phase"]) == (
        None,
        None,
        "building",
    )


def add_deployments(app: App, shas: list[str], start: datetime) -> None:
    """Queued deployments of `web`, one a second from `start`, as GitHub has not heard of."""

    async def insert() -> None:
        project = await Project.select(Project.id).where(Project.slug == "web").first()
        assert project is not None
        await Deployment.insert(
            *(
                Deployment(
                    project=project["id"],
                    sha=sha,
                    git_ref="main",
                    branch="main",
                    created_at=start + timedelta(seconds=index),
                )
                for index, sha in enumerate(shas)
            )
        )

    app.client.run(insert)


def test_stuck_reports_do_not_hold_back_the_others(
    app: App, token: str, clock: FrozenClock
) -> None:
    stuck = [f"dead{index:036x}" for index in range(BATCH)]
    others = [f"beef{index:036x}" for index in range(60)]
    start = datetime.now(UTC) - timedelta(hours=1)
    add_deployments(app, stuck, start)  # the oldest: a batch of the oldest is all stuck
    add_deployments(app, others, start + timedelta(minutes=5))
    app.github.fail("commit_status", status=502, only="/statuses/dead")

    told = [app.report() for _ in range(3)]
    assert sum(told) == 60
    assert all(statuses_of(app, sha) == 1 for sha in others)
    assert all(statuses_of(app, sha) == 1 for sha in stuck)  # tried once, due again in 2 s

    # Due again, the stuck reports come after a new one that has not failed yet.
    late = "cafe" + "0" * 36
    add_deployments(app, [late], start + timedelta(minutes=30))
    clock.advance(2)
    assert app.report() == 1
    assert statuses_of(app, late) == 1
    assert sum(statuses_of(app, sha) for sha in stuck) == BATCH + BATCH - 1  # 1 left out


def test_a_rate_limited_installation_holds_back_no_other_installations_reports(
    app: App, token: str, clock: FrozenClock
) -> None:
    add_other_tenant(app)
    app.deliver("push", payload("push.commits"))
    app.deliver("push", other_push(OTHER_SHA))
    asked_before = len(app.github.calls)
    # GitHub rate-limits Ada's installation for an hour.
    for route in ("create_deployment", "commit_status"):
        app.github.fail(route, status=429, headers={"Retry-After": "3600"}, only="Hello-World")

    assert app.report() == 1

    [ada] = [d for d in app.deployments() if d["sha"] == PUSH_SHA]
    assert (ada["report_pending"], ada["report_attempts"]) == (True, 1)
    assert ada["report_next_at"] == clock() + timedelta(seconds=3600)
    [told] = app.github.calls_to("POST", f"/repos/{OTHER_REPO}/statuses/{OTHER_SHA}")
    assert installation_of(app.github, told) == OTHER_INSTALLATION
    asked_for_ada = [call for call in app.github.calls[asked_before:] if REPO in call.path]
    assert len(asked_for_ada) == 1  # the answer that asked for the wait
    assert app.report() == 0
    assert [call for call in app.github.calls[asked_before:] if REPO in call.path] == asked_for_ada
