"""End to end as a GitHub App: signed deliveries → real local builds → what GitHub is told.

The push is the real fixture with `clone_url` pointed at a local `file://` repository; the
builder really clones, builds (npm, offline) and uploads; the app's own loops run; GitHub is the
recording fake behind the real client.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.asgi import create_app
from app.github.client import GitHubAppClient
from app.hostnames import deployment_label
from app.reporting.comment import MARKER
from app.settings import Settings
from app.tables import Deployment
from tests.support.api import Client, bearer, sign_up
from tests.support.binding import bind
from tests.support.git import git
from tests.support.github_fake import FakeGitHubApi
from tests.support.sites import NPM_OFFLINE, make_site
from tests.support.webhooks import REPO, REPO_ID, payload, signature

DEADLINE = 90.0


def head(repo: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def commit(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", f"change {name}")
    return head(repo)


def deliver(client: Client, event: str, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    response = client.post(
        "/github/webhooks",
        content=raw,
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": signature(raw),
        },
    )
    assert response.status_code in (200, 202), response.text


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_push_and_a_pull_request_deploy_and_report(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    repo = tmp_path / "hello-world"
    clone_url = make_site(repo)
    with FakeGitHubApi() as github:
        settings = make_settings(
            SCALEMESH_DATABASE_URL=database_url,
            SCALEMESH_RECONCILE_INTERVAL="0.2",
            SCALEMESH_BUILD_TIMEOUT="60",
            PATH="/usr/local/bin:/usr/bin:/bin",
            **github.environ(),
        )
        assert settings.github is not None
        api = GitHubAppClient(settings.github, github.base_url, transport=github.transport)
        with Client(create_app(settings, github=api)) as client:
            token = sign_up(client)
            response = client.post(
                "/project",
                json={
                    "name": "web",
                    "repo": REPO,
                    "production_branch": "main",
                    "output_directory": "dist",
                    "env": NPM_OFFLINE,
                },
                headers=bearer(token),
            )
            assert response.status_code == 201, response.text
            bind(client, "web", REPO_ID)
            deliver(client, "installation", payload("installation.created"))

            push = payload("push.commits")
            push["after"] = sha = head(repo)
            push["repository"]["clone_url"] = clone_url
            github.refs.set_branch(REPO, "main", sha)  # what the push did on GitHub
            deliver(client, "push", push)

            statuses = f"/repos/{REPO}/statuses/{sha}"
            wait_for(
                "the success status",
                lambda: any(
                    c.json["state"] != "pending" for c in github.calls_to("POST", statuses)
                ),
            )
            told = [call.json for call in github.calls_to("POST", statuses)]
            [deployment] = client.run(lambda: Deployment.select(Deployment.id, Deployment.state))
            url = settings.deployment_url(deployment_label("web", str(deployment["id"])))
            assert deployment["state"] == "ready"
            assert told[0]["state"] == "pending"
            assert told[-1] == {
                "state": "success",
                "context": "scalemesh/web",
                "description": f"Deployed to {url}",
                "target_url": url,
            }

            # A pull request from a branch of the same repository, then a second push to it.
            git(repo, "checkout", "-q", "-b", "changes")
            opened = payload("pull_request.opened")
            opened["pull_request"]["head"]["sha"] = commit(repo, "a.txt", "one")
            opened["repository"]["clone_url"] = clone_url
            deliver(client, "pull_request", opened)
            wait_for(
                "the first preview in the comment",
                lambda: any("✅ Ready" in c.body for c in github.comments_on(REPO, 2)),
            )
            [comment] = github.comments_on(REPO, 2)

            synchronize = payload("pull_request.synchronize")
            synchronize["pull_request"]["head"]["sha"] = second = commit(repo, "b.txt", "two")
            synchronize["repository"]["clone_url"] = clone_url
            deliver(client, "pull_request", synchronize)
            wait_for(
                "the second preview's success status",
                lambda: any(
                    c.json["state"] == "success"
                    for c in github.calls_to("POST", f"/repos/{REPO}/statuses/{second}")
                ),
            )
            wait_for(
                "the comment to show the second preview ready",
                lambda: (
                    "✅ Ready" in github.comments[comment.id].body
                    and github.calls_to("PATCH", f"/repos/{REPO}/issues/comments/{comment.id}")
                    != []
                ),
            )
            assert [c.id for c in github.comments_on(REPO, 2)] == [comment.id]
            assert len(github.calls_to("POST", f"/repos/{REPO}/issues/2/comments")) == 1
            assert github.comments[comment.id].body.startswith(MARKER)
            states = client.run(
                lambda: Deployment.select(Deployment.sha, Deployment.state).order_by(
                    Deployment.created_at
                )
            )
            assert [(row["sha"], row["state"]) for row in states][-1] == (second, "ready")
