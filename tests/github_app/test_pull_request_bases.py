"""The branch a pull request merges into (`pull_request.base.ref`) reaches its deployments and
their build specs, so their builds start from that branch's cache when theirs has none: a
pull request's own previews, a fork's, and the pushes to its branch while it is open."""

from __future__ import annotations

from typing import Any

from tests.support.api import bearer
from tests.support.deployments import FakeRunner, tick
from tests.support.github_app import PR_SHA, App, pr_event
from tests.support.webhooks import payload

BASE = "master"
"""`pull_request.base.ref` in the fixtures; the project's production branch is `main`."""


def push(branch: str, sha: str) -> dict[str, Any]:
    body = payload("push.commits")
    body["ref"] = f"refs/heads/{branch}"
    body["after"] = sha
    return body


def test_a_pull_requests_preview_is_built_with_its_base_branch(
    app: App, token: str, runner: FakeRunner
) -> None:
    app.deliver("pull_request", pr_event("opened"))
    tick(app.client)

    [deployment] = app.deployments()
    assert deployment["base_branch"] == BASE
    spec = runner.spec_of(str(deployment["id"]))
    assert (spec.branch, spec.base_branch, spec.production_branch) == ("changes", BASE, "main")
    assert spec.from_fork is False


def test_a_forks_preview_is_built_with_its_base_branch(
    app: App, token: str, runner: FakeRunner
) -> None:
    allowed = app.client.patch(
        "/projects/web", json={"allow_fork_builds": True}, headers=bearer(token)
    )
    assert allowed.status_code == 200, allowed.text

    app.deliver("pull_request", payload("pull_request.opened.fork"))
    tick(app.client)

    [deployment] = app.deployments()
    assert deployment["base_branch"] == BASE
    spec = runner.spec_of(str(deployment["id"]))
    assert (spec.from_fork, spec.branch, spec.base_branch) == (True, "", BASE)
    assert spec.production_branch == "main"


def test_pushes_to_a_branch_carry_its_open_pull_requests_base(
    app: App, token: str, runner: FakeRunner
) -> None:
    app.deliver("push", push("changes", PR_SHA))
    [pushed] = app.deployments()
    assert pushed["base_branch"] is None  # no pull request yet

    app.deliver("pull_request", pr_event("opened"))  # the same commit: tied to the PR
    [tied] = app.deployments()
    assert (tied["pr_number"], tied["base_branch"]) == (2, BASE)

    app.deliver("push", push("changes", "1" * 40))
    app.deliver("push", push("other", "2" * 40))
    tick(app.client)
    later, other = app.deployments()[1:]
    assert (later["branch"], later["base_branch"]) == ("changes", BASE)
    assert runner.spec_of(str(later["id"])).base_branch == BASE
    assert (other["branch"], other["base_branch"]) == ("other", None)  # no pull request
    assert runner.spec_of(str(other["id"])).base_branch == ""

    app.deliver("pull_request", payload("pull_request.closed"))
    app.deliver("push", push("changes", "3" * 40))
    after_close = app.deployments()[-1]
    assert (after_close["sha"], after_close["base_branch"]) == ("3" * 40, None)
