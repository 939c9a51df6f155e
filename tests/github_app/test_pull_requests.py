"""Pull requests: a preview per project, one comment edited in place, forks refused or bare."""

from __future__ import annotations

from app.deployments.triggers import FORK_REFUSAL
from app.reporting.comment import MARKER
from app.reporting.messages import shorten
from app.tables import (
    PullRequestComment,
)
from tests.support.api import bearer
from tests.support.binding import bind
from tests.support.deployments import FakeRunner, tick
from tests.support.github_app import (
    PR_SHA,
    App,
    deployment_urls,
    pr_event,
)
from tests.support.webhooks import REPO, REPO_ID, payload


def test_a_pull_request_gets_one_comment_edited_in_place(app: App, token: str) -> None:
    app.deliver("pull_request", pr_event("opened"))
    [deployment] = app.deployments()
    assert (deployment["pr_number"], deployment["sha"], deployment["branch"]) == (
        2,
        PR_SHA,
        "changes",
    )
    assert deployment["target"] == "preview"
    app.report()
    [comment] = app.github.comments_on(REPO, 2)
    assert comment.body.startswith(MARKER)
    assert "| **web** | ⏳ Queued | — |" in comment.body
    tick(app.client)
    app.build(str(deployment["id"]))
    [comment] = app.github.comments_on(REPO, 2)
    assert "| **web** | ✅ Ready | [Visit preview](http://web-git-changes.localhost:8080) |" in (
        comment.body
    )
    assert f"[Inspect](http://localhost:8000/deployments/{deployment['id']})" in comment.body
    assert len(app.github.calls_to("POST", f"/repos/{REPO}/issues/2/comments")) == 1

    new_sha = "1" * 40
    app.deliver("pull_request", pr_event("synchronize", sha=new_sha))
    app.report()
    tick(app.client)
    newest = app.deployments()[-1]
    assert newest["sha"] == new_sha
    app.build(str(newest["id"]))
    assert len(app.github.comments_on(REPO, 2)) == 1
    assert len(app.github.calls_to("POST", f"/repos/{REPO}/issues/2/comments")) == 1
    assert len(app.github.calls_to("PATCH", f"/repos/{REPO}/issues/comments/{comment.id}")) >= 3
    stored = app.client.run(lambda: PullRequestComment.select().first())
    assert (stored["repository"], stored["pr_number"], stored["comment_id"]) == (
        REPO,
        2,
        comment.id,
    )

    app.deliver("pull_request", payload("pull_request.closed.merged"))
    app.report()
    assert all(row["retired"] for row in app.deployments())
    for github_deployment in app.github.deployments.values():
        assert github_deployment.statuses[-1]["state"] == "inactive"


def test_the_branch_push_and_the_pull_request_build_the_commit_once(app: App, token: str) -> None:
    push = payload("push.commits")
    push["ref"] = "refs/heads/changes"
    push["after"] = PR_SHA
    app.deliver("push", push)
    app.deliver("pull_request", pr_event("opened"))
    [deployment] = app.deployments()
    assert deployment["pr_number"] == 2  # the push's deployment now belongs to the PR
    app.report()
    assert len(app.github.comments_on(REPO, 2)) == 1
    app.deliver("pull_request", pr_event("reopened"))
    assert len(app.deployments()) == 1


def test_a_deleted_comment_is_recreated(app: App, token: str) -> None:
    app.deliver("pull_request", pr_event("opened"))
    app.report()
    [comment] = app.github.comments_on(REPO, 2)
    app.github.delete_comment(comment.id)
    tick(app.client)
    app.report()
    [again] = app.github.comments_on(REPO, 2)
    assert again.id != comment.id
    stored = app.client.run(lambda: PullRequestComment.select().first())
    assert stored["comment_id"] == again.id


def test_a_comment_left_by_an_earlier_install_is_found_by_its_marker(app: App, token: str) -> None:
    app.github.add_comment(REPO, 2, "Looks good to me")
    ours = app.github.add_comment(REPO, 2, f"{MARKER}\nold table", login="scalemesh[bot]")
    app.deliver("pull_request", pr_event("opened"))
    app.report()
    assert [c.id for c in app.github.comments_on(REPO, 2)] == [ours.id - 1, ours.id]
    assert app.github.comments[ours.id].body.startswith(MARKER)
    assert "old table" not in app.github.comments[ours.id].body


def test_a_fork_pull_request_is_not_built_and_the_comment_says_why(
    app: App, token: str, runner: FakeRunner
) -> None:
    app.deliver("pull_request", payload("pull_request.opened.fork"))
    [deployment] = app.deployments()
    assert (deployment["state"], deployment["from_fork"]) == ("cancelled", True)
    assert deployment["error"] == FORK_REFUSAL.reason
    assert deployment["error_code"] == "fork_refused"
    app.settle()
    assert runner.builds == {}
    [comment] = app.github.comments_on(REPO, 7)
    assert "🔒 Not built (fork)" in comment.body
    assert FORK_REFUSAL.reason in comment.body
    [status] = app.statuses("9f" * 20)
    assert status["state"] == "failure"
    assert status["description"] == shorten(FORK_REFUSAL.reason)
    assert len(status["description"]) <= 140
    assert app.github.calls_to("POST", f"/repos/{REPO}/deployments") == []


def test_a_fork_pull_request_builds_without_secrets_when_allowed(
    app: App, token: str, runner: FakeRunner
) -> None:
    response = app.client.patch(
        "/projects/web", json={"allow_fork_builds": True}, headers=bearer(token)
    )
    assert response.status_code == 200
    app.deliver("pull_request", payload("pull_request.opened.fork"))
    tick(app.client)
    [deployment] = app.deployments()
    spec = runner.spec_of(str(deployment["id"]))
    assert spec.env == {}
    assert spec.sha == "9f" * 20
    assert (deployment["branch"], deployment["git_ref"]) == (None, "pull/7/head")
    app.report()
    app.build(str(deployment["id"]))
    [comment] = app.github.comments_on(REPO, 7)
    own_url, _ = deployment_urls(app, deployment)
    assert f"[Visit preview]({own_url})" in comment.body


def test_the_comment_lists_only_projects_deployed_for_the_pull_request(
    app: App, token: str
) -> None:
    app.deliver("pull_request", pr_event("opened"))
    app.client.post("/project", json={"name": "docs", "repo": REPO}, headers=bearer(token))
    bind(app.client, "docs", REPO_ID)  # built for the repository, but not for this pull request
    app.report()
    [comment] = app.github.comments_on(REPO, 2)
    assert "**web**" in comment.body
    assert "**docs**" not in comment.body
