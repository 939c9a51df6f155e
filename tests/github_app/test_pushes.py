"""Pushes: what a push to a branch deploys, with which token, and what deleting a branch retires."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from app.asgi import create_app
from app.settings import Settings
from app.tables import (
    Alias,
    Deployment,
    Installation,
    Repository,
    WebhookDelivery,
)
from tests.support.api import Client, bearer, sign_up
from tests.support.binding import bind
from tests.support.deployments import FakeResolver, FakeRunner, tick
from tests.support.github_app import (
    PUSH_SHA,
    App,
    deployment_urls,
    pr_event,
)
from tests.support.webhooks import INSTALLATION, REPO, REPO_ID, payload


def test_a_push_to_the_production_branch_deploys_production(app: App, token: str) -> None:
    response = app.deliver("push", payload("push.commits"))
    assert response.status_code == 202
    assert response.json() == {"status": "accepted"}
    [deployment] = app.deployments()
    assert (deployment["sha"], deployment["branch"], deployment["target"]) == (
        PUSH_SHA,
        "main",
        "production",
    )
    assert deployment["commit_message"].startswith("Fix the footer link")

    app.report()
    [created] = app.github.calls_to("POST", f"/repos/{REPO}/deployments")
    assert created.json == {
        "ref": PUSH_SHA,
        "environment": "Production",
        "description": "web: production deployment",
        "auto_merge": False,
        "required_contexts": [],
        "transient_environment": False,
        "production_environment": True,
    }
    own_url, log_url = deployment_urls(app, deployment)
    assert app.statuses(PUSH_SHA) == [
        {
            "state": "pending",
            "context": "scalemesh/web",
            "description": "Waiting for a builder…",
            "target_url": log_url,
        }
    ]
    tick(app.client)  # the build starts
    app.report()
    app.build(str(deployment["id"]))

    assert [s["state"] for s in app.statuses(PUSH_SHA)] == ["pending", "pending", "success"]
    assert app.statuses(PUSH_SHA)[1]["description"] == "Building…"
    assert app.statuses(PUSH_SHA)[-1] == {
        "state": "success",
        "context": "scalemesh/web",
        "description": f"Deployed to {own_url}",
        "target_url": own_url,
    }
    [github_deployment] = app.github.deployments.values()
    assert [s["state"] for s in github_deployment.statuses] == ["queued", "in_progress", "success"]
    assert github_deployment.statuses[-1]["environment_url"] == "http://web.localhost:8080"
    assert github_deployment.statuses[-1]["log_url"] == log_url
    assert app.client.run(lambda: Deployment.select(Deployment.github_deployment_id).first()) == {
        "github_deployment_id": github_deployment.id
    }
    # Nothing changed since: nothing more is sent.
    calls = len(app.github.calls)
    app.report()
    assert len(app.github.calls) == calls


def test_the_build_gets_a_repo_scoped_read_only_token(
    app: App, token: str, runner: FakeRunner
) -> None:
    body = payload("push.commits")
    body["repository"]["clone_url"] = "https://github.com/Codertocat/Hello-World.git"
    body["repository"]["private"] = True
    app.deliver("push", body)
    tick(app.client)
    [deployment] = app.deployments()
    spec = runner.spec_of(str(deployment["id"]))
    [mint] = [
        call
        for call in app.github.calls_to("POST", f"/app/installations/{INSTALLATION}/access_tokens")
        if call.json
    ]
    assert mint.json == {"repositories": ["Hello-World"], "permissions": {"contents": "read"}}
    minted = next(t for t in app.github.tokens if t.repositories == ["Hello-World"])
    assert spec.token == minted.token
    assert spec.git_url == "https://github.com/Codertocat/Hello-World.git"
    assert spec.env == {"API_KEY": "k-123456"}


def test_a_private_repository_github_refuses_a_token_for_fails_as_our_fault(
    app: App, token: str, runner: FakeRunner
) -> None:
    body = payload("push.commits")
    body["repository"]["private"] = True
    app.deliver("push", body)
    app.github.fail("access_tokens", status=422, body={"message": "repository not accessible"})
    tick(app.client)
    [deployment] = app.deployments()
    assert deployment["state"] == "failed"
    assert deployment["error_code"] == "clone_token_unavailable"
    assert deployment["platform_fault"] is True
    assert "no token to clone the private repository" in deployment["error"]
    assert runner.builds == {}


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [(502, {}, 15), (429, {"Retry-After": "90"}, 90)],
)
def test_a_private_repository_waits_while_github_cannot_mint_a_token(
    app: App,
    token: str,
    runner: FakeRunner,
    status: int,
    headers: dict[str, str],
    wait: int,
) -> None:
    body = payload("push.commits")
    body["repository"]["private"] = True
    app.deliver("push", body)
    app.github.fail("access_tokens", status=status, headers=headers, times=1)
    before = datetime.now(UTC)

    tick(app.client)

    [deployment] = app.deployments()
    assert (deployment["state"], deployment["attempts"]) == ("queued", 0)
    assert deployment["start_after"] >= before + timedelta(seconds=wait - 1)
    assert runner.builds == {}
    if status == 429:
        return  # the client itself holds back every call to that installation meanwhile
    app.client.run(
        lambda: Deployment.update({Deployment.start_after: datetime.now(UTC)}, force=True)
    )
    tick(app.client)
    [deployment] = app.deployments()
    assert (deployment["state"], deployment["attempts"]) == ("building", 1)
    assert runner.spec_of(str(deployment["id"])).token


def test_a_public_repository_clones_without_a_token_when_github_is_down(
    app: App, token: str, runner: FakeRunner
) -> None:
    app.deliver("push", payload("push.commits"))
    app.github.fail("access_tokens", status=502)
    tick(app.client)
    [deployment] = app.deployments()
    assert runner.spec_of(str(deployment["id"])).token == ""


def test_a_push_to_another_branch_deploys_a_preview(app: App, token: str) -> None:
    body = payload("push.commits")
    body["ref"] = "refs/heads/feature/login"
    app.deliver("push", body)
    [deployment] = app.deployments()
    assert (deployment["branch"], deployment["target"]) == ("feature/login", "preview")
    app.report()
    tick(app.client)
    app.build(str(deployment["id"]))
    [created] = app.github.calls_to("POST", f"/repos/{REPO}/deployments")
    assert created.json["environment"] == "Preview \N{EN DASH} web"
    assert created.json["transient_environment"] is True
    assert created.json["production_environment"] is False
    [github_deployment] = app.github.deployments.values()
    assert (
        github_deployment.statuses[-1]["environment_url"]
        == "http://web-git-feature-login.localhost:8080"
    )


def test_a_tag_push_builds_nothing(app: App, token: str) -> None:
    body = payload("push.commits")
    body["ref"] = "refs/tags/v1.0"
    app.deliver("push", body, delivery="tag")
    app.report()
    assert app.deployments() == []
    assert app.github.calls_to("POST", f"/repos/{REPO}/statuses/{PUSH_SHA}") == []
    outcome = app.client.run(
        lambda: (
            WebhookDelivery.select(WebhookDelivery.outcome)
            .where(WebhookDelivery.delivery_id == "tag")
            .first()
        )
    )
    assert outcome == {"outcome": "ignored: refs/tags/v1.0 is not a branch"}


def test_the_real_tag_deletion_fixture_builds_nothing(app: App, token: str) -> None:
    app.deliver("push", payload("push.with-installation"))
    assert app.deployments() == []


@pytest.mark.parametrize("marker", ["[skip ci]", "[ci skip]", "[scalemesh skip]", "[SKIP CI]"])
def test_a_skip_marker_in_the_head_commit_skips(app: App, token: str, marker: str) -> None:
    body = payload("push.commits")
    body["head_commit"]["message"] = f"Tidy the README {marker}"
    app.deliver("push", body)
    assert app.deployments() == []


def test_a_push_to_a_repository_without_projects_builds_nothing(app: App, token: str) -> None:
    body = payload("push.commits")
    body["repository"]["full_name"] = "Codertocat/Other"
    body["repository"]["id"] = 5
    app.deliver("push", body)
    assert app.deployments() == []


def test_every_project_of_the_repository_deploys(app: App, token: str) -> None:
    response = app.client.post(
        "/project",
        json={"name": "docs", "repo": REPO.lower(), "production_branch": "docs"},
        headers=bearer(token),
    )
    assert response.status_code == 201
    bind(app.client, "docs", REPO_ID)
    app.deliver("push", payload("push.commits"))
    targets = sorted((row["target"], row["project"]) for row in app.deployments())
    assert [target for target, _ in targets] == ["preview", "production"]


def test_deleting_a_branch_retires_its_deployments(app: App, token: str) -> None:
    body = payload("push.commits")
    body["ref"] = "refs/heads/feature/login"
    app.deliver("push", body)
    [ready] = app.deployments()
    app.report()
    tick(app.client)
    app.build(str(ready["id"]))
    newer = copy.deepcopy(body)
    newer["after"] = "d" * 40
    app.deliver("push", newer)
    tick(app.client)  # the newer build is running when the branch goes
    app.report()
    assert "web-git-feature-login" in {
        row["hostname"] for row in app.client.run(lambda: Alias.select(Alias.hostname))
    }

    app.deliver("push", payload("push.branch-deleted"))
    app.settle()

    hostnames = {row["hostname"] for row in app.client.run(lambda: Alias.select(Alias.hostname))}
    assert "web-git-feature-login" not in hostnames
    assert f"web-{str(ready['id']).replace('-', '')[:9]}" in hostnames  # its own URL stays
    rows = {str(row["id"]): row for row in app.deployments()}
    assert rows[str(ready["id"])]["retired"] is True
    running = next(row for key, row in rows.items() if key != str(ready["id"]))
    assert (running["state"], running["error"]) == ("cancelled", "the branch was deleted")
    [first, second] = app.github.deployments.values()
    assert first.statuses[-1]["state"] == "inactive"
    assert second.statuses[-1]["state"] == "inactive"


def test_a_pull_request_on_a_repository_without_the_app_builds_nothing(app: App) -> None:
    token = sign_up(app.client)
    app.client.post("/project", json={"name": "web", "repo": REPO}, headers=bearer(token))
    opened = pr_event("opened")
    opened["installation"] = None
    app.deliver("pull_request", opened)
    assert app.deployments() == []


def test_the_same_push_delivered_twice_builds_once(app: App, token: str) -> None:
    app.deliver("push", payload("push.commits"))
    app.deliver("push", payload("push.commits"))  # a new delivery id, the same commit
    assert len(app.deployments()) == 1
    other_branch = payload("push.commits")
    other_branch["ref"] = "refs/heads/release"
    app.deliver("push", other_branch)  # the same commit on another branch gets its own alias
    assert [row["branch"] for row in app.deployments()] == ["main", "release"]


def test_deleting_a_branch_of_a_repository_without_projects_moves_nothing(app: App) -> None:
    app.deliver("installation", payload("installation.created"))
    app.deliver("push", payload("push.branch-deleted"), delivery="gone")
    outcome = app.client.run(
        lambda: (
            WebhookDelivery.select(WebhookDelivery.outcome)
            .where(WebhookDelivery.delivery_id == "gone")
            .first()
        )
    )
    assert outcome == {"outcome": "branch feature/login deleted: 0 deployments retired"}


def test_without_a_github_app_a_covered_repository_clones_from_its_url_without_a_token(
    make_settings: Callable[..., Settings], database_url: str, runner: FakeRunner
) -> None:
    """The App was configured once (rows remain), then switched off: builds still clone."""
    settings = make_settings(SCALEMESH_DATABASE_URL=database_url)
    app = create_app(settings, runner=runner, ref_resolver=FakeResolver(), reconcile=False)
    with Client(app) as client:
        token = sign_up(client)
        client.post("/project", json={"name": "web", "repo": REPO}, headers=bearer(token))
        bind(client, "web", 1)

        async def remembered() -> None:
            rows = await Installation.insert(
                Installation(installation_id=INSTALLATION, account_login="Codertocat")
            ).returning(Installation._meta.primary_key)
            await Repository.insert(
                Repository(
                    github_id=1,
                    full_name=REPO,
                    clone_url="https://github.example/Codertocat/Hello-World.git",
                    installation=rows[0]["id"],
                )
            )

        client.run(remembered)
        deployment = client.post("/deploy", json={"project": "web"}, headers=bearer(token))
        tick(client)
        spec = runner.spec_of(deployment.json()["id"])
    assert spec.git_url == "https://github.example/Codertocat/Hello-World.git"
    assert spec.token == ""
