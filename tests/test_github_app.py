"""The GitHub App end to end inside the API: signed deliveries in, exact GitHub requests out.

Deliveries are the real payloads in `tests/fixtures/github/` (some adjusted per test), signed
with the test App's webhook secret. GitHub is `tests.github_fake.FakeGitHubApi` behind the real
githubkit client, so every assertion is on a request GitHub would have received. Builds are
driven by the scripted runner of `test_deployments`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.asgi import create_app, webhook_router
from app.deployments.lifecycle import DeploymentState
from app.deployments.transitions import move
from app.deployments.triggers import FORK_REFUSAL
from app.github.client import GitHubAppClient
from app.hostnames import deployment_label
from app.installations.service import install_url
from app.reporting.comment import HOLD_TTL, MARKER, CommentBusy
from app.reporting.messages import shorten
from app.reporting.reporter import CLAIM_TTL, Reporter
from app.settings import Settings
from app.tables import (
    Alias,
    Deployment,
    Installation,
    PullRequestComment,
    Repository,
    WebhookDelivery,
)
from tests.support.api import Client, bearer, sign_up
from tests.support.deployments import FakeResolver, FakeRunner, fail, succeed, tick
from tests.support.github_fake import WEBHOOK_SECRET, FakeGitHubApi
from tests.support.webhooks import INSTALLATION, REPO, payload, signature

ROOT = Path(__file__).parent.parent
PUSH_SHA = "f1c2d3e4f5a60718293a4b5c6d7e8f9012345678"
PR_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


@pytest.fixture
def github() -> Iterator[FakeGitHubApi]:
    with FakeGitHubApi() as fake:
        yield fake


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], database_url: str, github: FakeGitHubApi
) -> Settings:
    return make_settings(SCALEMESH_DATABASE_URL=database_url, **github.environ())


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def client(settings: Settings, runner: FakeRunner, github: FakeGitHubApi) -> Iterator[Client]:
    assert settings.github is not None
    api = GitHubAppClient(settings.github, github.base_url, transport=github.transport)
    app = create_app(
        settings, runner=runner, ref_resolver=FakeResolver(), reconcile=False, github=api
    )
    with Client(app) as test_client:
        yield test_client


class App:
    """The test's view of the running app: send deliveries, run the loops, read the rows."""

    def __init__(self, client: Client, runner: FakeRunner, github: FakeGitHubApi) -> None:
        self.client = client
        self.runner = runner
        self.github = github
        self.services = client.app.state.services

    def deliver(
        self, event: str, body: dict[str, Any] | bytes, *, delivery: str | None = None
    ) -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = self.client.post(
            "/github/webhooks",
            content=raw,
            headers={
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
                "X-Hub-Signature-256": signature(raw),
                "Content-Type": "application/json",
            },
        )
        self.client.run(self.services.deliveries.drain)
        return response

    def report(self) -> int:
        reporter: Reporter = self.services.reporter
        told: int = self.client.run(reporter.tick)
        return told

    def settle(self) -> None:
        """Run the reconcile loop, then tell GitHub."""
        tick(self.client)
        self.report()

    def deployments(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.client.run(
            lambda: Deployment.select().order_by(Deployment.created_at)
        )
        return rows

    def build(self, deployment_id: str, *, error: str | None = None) -> None:
        """Finish the deployment's build (successfully unless `error`), then settle."""
        if error is None:
            succeed(self.client, self.runner, deployment_id)
        else:
            fail(self.client, self.runner, deployment_id, error)
        self.settle()

    def statuses(self, sha: str) -> list[dict[str, Any]]:
        return [call.json for call in self.github.calls_to("POST", f"/repos/{REPO}/statuses/{sha}")]


@pytest.fixture
def app(client: Client, runner: FakeRunner, github: FakeGitHubApi) -> App:
    return App(client, runner, github)


@pytest.fixture
def token(app: App) -> str:
    """Ada's account with project `web` on the repository, and the App installed there."""
    token = sign_up(app.client)
    response = app.client.post(
        "/project",
        json={
            "name": "web",
            "repo": REPO,
            "production_branch": "main",
            "env": {"API_KEY": "k-123456"},
        },
        headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    assert app.deliver("installation", payload("installation.created")).status_code == 202
    return token


def deployment_urls(app: App, deployment: dict[str, Any]) -> tuple[str, str]:
    """The deployment's own URL and its log viewer's."""
    label = deployment_label("web", str(deployment["id"]))
    return (
        f"http://{label}.localhost:8080",
        f"http://localhost:8000/deployments/{deployment['id']}",
    )


# --- the manifest -----------------------------------------------------------------------------


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


# --- the edge ---------------------------------------------------------------------------------


def post_raw(client: Client, body: bytes, **headers: str) -> Any:
    return client.post("/github/webhooks", content=body, headers=headers)


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


def test_a_handler_that_breaks_is_recorded_not_retried_for_ever(app: App) -> None:
    body = payload("push.commits")
    del body["repository"]  # a payload our view cannot read
    assert app.deliver("push", body, delivery="broken").status_code == 202
    row = app.client.run(lambda: WebhookDelivery.select().first())
    assert row["outcome"] == "failed: ValidationError"
    assert row["processed_at"] is not None


def test_the_worker_outlives_a_database_error(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    worker = app.services.deliveries

    async def broken(delivery_id: str) -> None:
        raise RuntimeError("database is away")

    monkeypatch.setattr(worker, "process", broken)

    async def run_once() -> None:
        task = asyncio.create_task(worker.run())
        worker.submit("x")
        await worker.idle.wait()
        task.cancel()

    app.client.run(run_once)
    assert worker.idle.is_set()


def test_process_skips_unknown_and_finished_deliveries(app: App) -> None:
    worker = app.services.deliveries
    app.client.run(lambda: worker.process("no-such-delivery"))
    app.deliver("star", {"action": "created"}, delivery="done")
    app.client.run(lambda: worker.process("done"))
    row = app.client.run(lambda: WebhookDelivery.select().first())
    assert row["outcome"] == "ignored: not handled"


# --- installations ----------------------------------------------------------------------------


def installation_rows(app: App) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = app.client.run(
        lambda: Installation.select(
            Installation.installation_id, Installation.account_login, Installation.suspended
        )
    )
    return rows


def repositories(app: App) -> list[str]:
    rows = app.client.run(
        lambda: Repository.select(Repository.full_name).order_by(Repository.full_name)
    )
    return [row["full_name"] for row in rows]


def test_the_installation_lifecycle_decides_what_deploys(app: App, token: str) -> None:
    assert installation_rows(app) == [
        {"installation_id": INSTALLATION, "account_login": "Codertocat", "suspended": False}
    ]
    assert repositories(app) == [REPO]

    added = payload("installation_repositories.added")
    assert app.deliver("installation_repositories", added).status_code == 202
    assert repositories(app) == ["Codertocat/Hello-World", "Codertocat/Space"]
    removed = payload("installation_repositories.removed")
    removed["installation"] = added["installation"]
    removed["repositories_removed"] = added["repositories_added"]
    app.deliver("installation_repositories", removed)
    assert repositories(app) == [REPO]

    app.deliver("installation", payload("installation.suspend"))
    assert installation_rows(app)[0]["suspended"] is True
    assert app.deliver("push", payload("push.commits")).status_code == 202
    assert app.deployments() == []  # a suspended installation deploys nothing

    app.deliver("installation", payload("installation.unsuspend"))
    assert installation_rows(app)[0]["suspended"] is False
    app.deliver("push", payload("push.commits"))
    assert len(app.deployments()) == 1

    app.deliver("installation", payload("installation.deleted"))
    assert installation_rows(app) == []
    assert repositories(app) == []
    other = payload("push.commits")
    other["after"] = "e" * 40
    other["installation"] = None  # not an App delivery: nothing can vouch for it
    app.deliver("push", other)
    assert len(app.deployments()) == 1  # uninstalled: nothing more deploys


def test_a_push_before_the_installation_event_still_deploys(app: App) -> None:
    token = sign_up(app.client)
    app.client.post(
        "/project",
        json={"name": "web", "repo": REPO, "production_branch": "main"},
        headers=bearer(token),
    )
    app.deliver("push", payload("push.commits"))
    assert len(app.deployments()) == 1
    assert installation_rows(app)[0]["installation_id"] == INSTALLATION


def test_the_project_says_whether_the_app_is_installed(app: App) -> None:
    token = sign_up(app.client)
    app.client.post("/project", json={"name": "web", "repo": REPO}, headers=bearer(token))
    app.client.post(
        "/project", json={"name": "elsewhere", "repo": "someone/else"}, headers=bearer(token)
    )
    install_url = "https://github.com/apps/scale-mesh/installations/new"

    project = app.client.get("/projects/web", headers=bearer(token)).json()
    assert project["github"] == {"installed": False, "install_url": install_url}

    app.deliver("installation", payload("installation.created"))
    projects = {p["slug"]: p for p in app.client.get("/projects", headers=bearer(token)).json()}
    assert projects["web"]["github"] == {"installed": True, "install_url": install_url}
    assert projects["elsewhere"]["github"]["installed"] is False


def test_a_project_from_a_plain_git_url_has_no_github_status(app: App) -> None:
    token = sign_up(app.client)
    response = app.client.post(
        "/project",
        json={"name": "plain", "repo": "https://git.example.com/team/site.git"},
        headers=bearer(token),
    )
    assert response.json()["github"] is None


# --- pushes -----------------------------------------------------------------------------------


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


def test_a_private_repository_without_a_token_fails_as_our_fault(
    app: App, token: str, runner: FakeRunner
) -> None:
    body = payload("push.commits")
    body["repository"]["private"] = True
    app.github.fail("access_tokens", status=502)
    app.deliver("push", body)
    tick(app.client)
    [deployment] = app.deployments()
    assert deployment["state"] == "failed"
    assert deployment["platform_fault"] is True
    assert "no token to clone the private repository" in deployment["error"]
    assert runner.builds == {}


def test_a_public_repository_clones_without_a_token_when_github_is_down(
    app: App, token: str, runner: FakeRunner
) -> None:
    app.github.fail("access_tokens", status=502)
    app.deliver("push", payload("push.commits"))
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


# --- pull requests ----------------------------------------------------------------------------


def pr_event(name: str, **changes: Any) -> dict[str, Any]:
    body = payload(f"pull_request.{name}")
    body["pull_request"]["head"].update(changes)
    return body


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


def test_a_failed_build_reports_failure_with_its_reason(app: App, token: str) -> None:
    app.deliver("pull_request", pr_event("opened"))
    tick(app.client)
    [deployment] = app.deployments()
    app.build(str(deployment["id"]), error="npm run build exited with 1: missing script")
    _, log_url = deployment_urls(app, deployment)
    final = app.statuses(PR_SHA)[-1]
    assert final == {
        "state": "failure",
        "context": "scalemesh/web",
        "description": "npm run build exited with 1: missing script",
        "target_url": log_url,
    }
    [github_deployment] = app.github.deployments.values()
    assert github_deployment.statuses[-1]["state"] == "failure"
    assert "environment_url" not in github_deployment.statuses[-1] or (
        github_deployment.statuses[-1]["environment_url"] in (None, "")
    )
    [comment] = app.github.comments_on(REPO, 2)
    assert "| **web** | ❌ Failed | — |" in comment.body


def test_a_platform_fault_reports_error(app: App, token: str, runner: FakeRunner) -> None:
    runner.fail_start = "ECS is out of capacity"
    app.deliver("push", payload("push.commits"))
    app.settle()
    [deployment] = app.deployments()
    assert deployment["platform_fault"] is True
    final = app.statuses(PUSH_SHA)[-1]
    assert final["state"] == "error"
    assert "our fault" in final["description"]
    [github_deployment] = app.github.deployments.values()
    assert github_deployment.statuses[-1]["state"] == "error"


def test_a_long_reason_is_cut_to_140_characters(app: App, token: str) -> None:
    app.deliver("push", payload("push.commits"))
    tick(app.client)
    [deployment] = app.deployments()
    app.build(str(deployment["id"]), error="x" * 400)
    description = app.statuses(PUSH_SHA)[-1]["description"]
    assert len(description) == 140
    assert description.endswith("…")


def test_a_superseded_deployment_is_reported_cancelled(app: App, token: str) -> None:
    app.deliver("push", payload("push.commits"))
    app.report()
    newer = payload("push.commits")
    newer["after"] = "e" * 40
    app.deliver("push", newer)
    app.report()
    final = app.statuses(PUSH_SHA)[-1]
    assert final["state"] == "failure"
    assert final["description"].startswith("Cancelled: superseded by")
    first = app.github.deployments[min(app.github.deployments)]
    assert first.statuses[-1]["state"] == "inactive"


def test_reporting_retries_after_github_fails(app: App, token: str, monkeypatch: Any) -> None:
    import app.reporting.reporter as report_module

    clock = [1000.0]
    monkeypatch.setattr(report_module.time, "monotonic", lambda: clock[0])
    app.github.fail("commit_status", status=502)
    app.deliver("push", payload("push.commits"))
    assert app.report() == 0
    [deployment] = app.deployments()
    assert (deployment["report_pending"], deployment["reported_phase"]) == (True, None)
    assert deployment["report_claim"] is None  # let go, for any replica to take up
    assert deployment["github_deployment_id"] is not None  # kept: never created twice

    app.github.heal()
    assert app.report() == 0  # waits for its retry time
    clock[0] += 2.5
    assert app.report() == 1
    assert len(app.github.calls_to("POST", f"/repos/{REPO}/deployments")) == 1
    assert app.statuses(PUSH_SHA)[-1]["state"] == "pending"
    assert reported(app) == (False, "queued")


def test_reporting_backs_off_more_after_each_failure(
    app: App, token: str, monkeypatch: Any
) -> None:
    import app.reporting.reporter as report_module

    clock = [0.0]
    monkeypatch.setattr(report_module.time, "monotonic", lambda: clock[0])
    app.github.fail("create_deployment", status=500)
    app.deliver("push", payload("push.commits"))
    attempts = []
    for _ in range(12):
        app.report()
        attempts.append(len(app.github.calls_to("POST", f"/repos/{REPO}/deployments")))
        clock[0] += 1.0
    # tried at t=0, 2, 6: 2 s, then 4 s, then 8 s apart
    assert [attempts[i] for i in (0, 1, 2, 5, 6, 11)] == [1, 1, 2, 2, 3, 3]


def test_a_reporter_pass_survives_a_database_error(app: App, monkeypatch: Any) -> None:
    reporter: Reporter = app.services.reporter
    calls = []

    async def broken() -> int:
        calls.append(1)
        raise RuntimeError("database is away")

    monkeypatch.setattr(reporter, "tick", broken)

    async def run_briefly() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reporter.run(), 0.3)

    app.client.run(run_briefly)  # the loop caught the error and went on to wait
    assert calls == [1]


def test_a_project_without_an_installation_is_not_reported(app: App) -> None:
    token = sign_up(app.client)
    app.client.post(
        "/project",
        json={"name": "web", "repo": REPO, "production_branch": "main"},
        headers=bearer(token),
    )
    response = app.client.post("/deploy", json={"project": "web"}, headers=bearer(token))
    assert response.status_code == 202
    app.report()
    assert app.github.calls == []
    assert reported(app) == (False, "unreported")


def test_a_manual_deploy_of_an_installed_repository_is_reported(app: App, token: str) -> None:
    response = app.client.post("/deploy", json={"project": "web"}, headers=bearer(token))
    assert response.status_code == 202
    app.report()
    assert app.github.calls_to("POST", f"/repos/{REPO}/deployments")


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


def test_the_comment_lists_only_projects_deployed_for_the_pull_request(
    app: App, token: str
) -> None:
    app.deliver("pull_request", pr_event("opened"))
    app.client.post("/project", json={"name": "docs", "repo": REPO}, headers=bearer(token))
    app.report()
    [comment] = app.github.comments_on(REPO, 2)
    assert "**web**" in comment.body
    assert "**docs**" not in comment.body


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


@pytest.mark.parametrize(
    ("api_url", "expected"),
    [
        ("https://api.github.com", "https://github.com/apps/scale-mesh/installations/new"),
        (
            "https://ghe.example.com/api/v3",
            "https://ghe.example.com/apps/scale-mesh/installations/new",
        ),
    ],
)
def test_the_install_link_follows_the_github_host(
    make_settings: Callable[..., Settings], github: FakeGitHubApi, api_url: str, expected: str
) -> None:
    settings = make_settings(**{**github.environ(), "SCALEMESH_GITHUB_API_URL": api_url})
    assert install_url(settings) == expected
    assert install_url(make_settings()) is None


def reported(app: App) -> tuple[bool, str | None]:
    """Whether GitHub is behind the first deployment, and the phase it was last told."""
    row = app.deployments()[0]
    return bool(row["report_pending"]), row["reported_phase"]


def claim_elsewhere(app: App, until: datetime) -> None:
    """What another replica's claim looks like, held until `until`."""
    app.client.run(
        lambda: Deployment.update(
            {Deployment.report_claim: "beef" * 8, Deployment.report_claimed_until: until},
            force=True,
        )
    )


def test_a_deployment_another_replica_is_reporting_is_left_to_it(app: App, token: str) -> None:
    app.deliver("push", payload("push.commits"))
    claim_elsewhere(app, datetime.now(UTC) + timedelta(seconds=CLAIM_TTL))  # a moment ago
    assert app.report() == 0
    assert app.github.calls_to("POST", f"/repos/{REPO}/deployments") == []

    claim_elsewhere(app, datetime.now(UTC) - timedelta(seconds=1))  # it died mid-report
    assert app.report() == 1
    assert len(app.github.calls_to("POST", f"/repos/{REPO}/deployments")) == 1
    assert reported(app) == (False, "queued")


def test_two_replicas_reporting_at_once_create_one_github_deployment(
    app: App, token: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.deliver("push", payload("push.commits"))
    first: Reporter = app.services.reporter
    second = Reporter(settings, app.services.github)
    first_claim, second_claim = first._claim, second._claim

    async def both() -> list[int]:
        # Both passes read the row before either claims it; the second claims first.
        claimed = asyncio.Event()

        async def claim_after_the_other(view: Any) -> str | None:
            await claimed.wait()
            return await first_claim(view)

        async def claim_and_tell(view: Any) -> str | None:
            try:
                return await second_claim(view)
            finally:
                claimed.set()

        monkeypatch.setattr(first, "_claim", claim_after_the_other)
        monkeypatch.setattr(second, "_claim", claim_and_tell)
        return list(await asyncio.gather(first.tick(), second.tick()))

    assert sorted(app.client.run(both)) == [0, 1]
    assert len(app.github.calls_to("POST", f"/repos/{REPO}/deployments")) == 1
    assert len(app.statuses(PUSH_SHA)) == 1


def test_a_change_while_reporting_is_reported_next(
    app: App, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.deliver("push", payload("push.commits"))
    reporter: Reporter = app.services.reporter
    real = reporter.report
    [row] = app.deployments()

    async def report_then_start(report: Any, covered: Any) -> None:
        await real(report, covered)
        await move(str(row["id"]), [DeploymentState.QUEUED], DeploymentState.BUILDING)

    monkeypatch.setattr(reporter, "report", report_then_start)
    assert app.report() == 1
    assert reported(app) == (True, None)  # the change dropped the claim: GitHub is behind
    monkeypatch.setattr(reporter, "report", real)
    assert app.report() == 1
    assert [s["description"] for s in app.statuses(PUSH_SHA)] == [
        "Waiting for a builder…",
        "Building…",
    ]


def test_without_a_github_app_a_covered_repository_clones_from_its_url_without_a_token(
    make_settings: Callable[..., Settings], database_url: str, runner: FakeRunner
) -> None:
    """The App was configured once (rows remain), then switched off: builds still clone."""
    settings = make_settings(SCALEMESH_DATABASE_URL=database_url)
    app = create_app(settings, runner=runner, ref_resolver=FakeResolver(), reconcile=False)
    with Client(app) as client:
        token = sign_up(client)
        client.post("/project", json={"name": "web", "repo": REPO}, headers=bearer(token))

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


def test_two_replicas_writing_one_pull_requests_comment_create_one(
    app: App, token: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.client.post("/project", json={"name": "docs", "repo": REPO}, headers=bearer(token))
    app.deliver("pull_request", pr_event("opened"))  # a preview for `web` and one for `docs`
    first: Reporter = app.services.reporter
    second = Reporter(settings, app.services.github)
    create = app.services.github.create_comment

    async def slow_create(*args: Any) -> int:
        await asyncio.sleep(0.05)  # long enough for the other replica to get there too
        comment_id: int = await create(*args)
        return comment_id

    monkeypatch.setattr(app.services.github, "create_comment", slow_create)

    async def both() -> list[object]:
        writes = (reporter.comments.refresh(INSTALLATION, REPO, 2) for reporter in (first, second))
        return list(await asyncio.gather(*writes, return_exceptions=True))

    outcomes = app.client.run(both)
    # Either may take the hold first (on PostgreSQL the inserts race over the wire); the other
    # is told to come back on a later pass.
    assert [outcome for outcome in outcomes if outcome is None] == [None]
    assert [type(outcome) for outcome in outcomes if outcome is not None] == [CommentBusy]
    # Had both read "no comment yet" before either took the row, the second still loses:
    with pytest.raises(CommentBusy):
        app.client.run(lambda: second.comments._hold(REPO, 2, None))
    [comment] = app.github.comments_on(REPO, 2)
    app.client.run(lambda: second.comments.refresh(INSTALLATION, REPO, 2))
    assert [c.id for c in app.github.comments_on(REPO, 2)] == [comment.id]
    body = app.github.comments[comment.id].body
    assert "**web**" in body
    assert "**docs**" in body


def test_a_comment_hold_left_by_a_replica_that_died_is_taken_over(app: App, token: str) -> None:
    app.deliver("pull_request", pr_event("opened"))
    # Died after creating the comment, before remembering its id.
    ours = app.github.add_comment(REPO, 2, f"{MARKER}\nhalf-written", login="scalemesh[bot]")

    def hold(updated_at: datetime) -> None:
        app.client.run(
            lambda: PullRequestComment.insert(
                PullRequestComment(
                    repository=REPO,
                    pr_number=2,
                    comment_id=None,
                    state="writing",
                    updated_at=updated_at,
                )
            )
        )

    hold(datetime.now(UTC))
    assert app.report() == 0  # a fresh hold: another replica is at it
    assert "half-written" in app.github.comments[ours.id].body

    app.client.run(lambda: PullRequestComment.delete(force=True))
    hold(datetime.now(UTC) - timedelta(seconds=HOLD_TTL + 60))
    reporter: Reporter = app.services.reporter
    reporter._retry.clear()
    assert app.report() == 1
    assert [c.id for c in app.github.comments_on(REPO, 2)] == [ours.id]  # found, not doubled
    assert "half-written" not in app.github.comments[ours.id].body
    stored = app.client.run(lambda: PullRequestComment.select().first())
    assert stored["comment_id"] == ours.id
    assert stored["state"] == "written"


def test_a_failed_comment_write_lets_go_of_its_hold(app: App, token: str) -> None:
    app.deliver("pull_request", pr_event("opened"))
    app.github.fail("create_comment", status=502)
    assert app.report() == 0
    assert app.client.run(lambda: PullRequestComment.select()) == []  # no hold left behind
    app.github.heal()
    reporter: Reporter = app.services.reporter
    reporter._retry.clear()
    assert app.report() == 1
    [comment] = app.github.comments_on(REPO, 2)
    stored = app.client.run(lambda: PullRequestComment.select().first())
    assert stored["comment_id"] == comment.id
