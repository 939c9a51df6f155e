"""End to end: skipped builds through the GitHub App, the real builder under the local runner,
and what GitHub, the API, the aliases and the metrics say of them.

A monorepo with two projects on one repository (root directories apps/a and apps/b): a push
touching only apps/a builds a and skips b.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.asgi import create_app
from app.github.client import GitHubAppClient
from app.hostnames import production_label
from app.settings import Settings
from app.tables import Alias
from tests.support.api import Client, bearer, sign_up
from tests.support.binding import bind
from tests.support.git import git, head
from tests.support.github_fake import FakeGitHubApi
from tests.support.webhooks import REPO, REPO_ID, payload, signature

DEADLINE = 90.0


@dataclass
class Monorepo:
    """The API with its loops, the GitHub fake, and one repository serving several projects."""

    client: Client
    github: FakeGitHubApi
    repo: Path
    user_token: str

    def project(self, name: str, **fields: Any) -> None:
        response = self.client.post(
            "/project", json={"name": name, "repo": REPO, **fields}, headers=bearer(self.user_token)
        )
        assert response.status_code == 201, response.text
        bind(self.client, name, REPO_ID)

    def commit(self, files: dict[str, str]) -> str:
        for name, text in files.items():
            (self.repo / name).parent.mkdir(parents=True, exist_ok=True)
            (self.repo / name).write_text(text)
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", f"change {', '.join(files)}")
        return head(self.repo)

    def push(self, sha: str, branch: str = "main") -> None:
        push = payload("push.commits")
        push["after"] = sha
        push["ref"] = f"refs/heads/{branch}"
        push["repository"]["clone_url"] = f"file://{self.repo}"
        self.github.refs.set_branch(REPO, branch, sha)  # what the push did on GitHub
        self.deliver("push", push)

    def deliver(self, event: str, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        response = self.client.post(
            "/github/webhooks",
            content=raw,
            headers={
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": signature(raw),
            },
        )
        assert response.status_code in (200, 202), response.text

    def statuses(self, sha: str, slug: str) -> list[dict[str, Any]]:
        return [
            call.json
            for call in self.github.calls_to("POST", f"/repos/{REPO}/statuses/{sha}")
            if call.json["context"] == f"scalemesh/{slug}"
        ]

    def told(self, sha: str, slug: str) -> dict[str, Any]:
        """The last commit status of `slug` for `sha`, once it is no longer pending."""
        deadline = time.monotonic() + DEADLINE
        while True:
            told = self.statuses(sha, slug)
            if told and told[-1]["state"] != "pending":
                return told[-1]
            assert time.monotonic() < deadline, f"timed out waiting for {slug}'s status"
            time.sleep(0.2)

    def deployments(self, slug: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/projects/{slug}/deployments", headers=bearer(self.user_token))
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    def production(self, slug: str) -> str:
        [row] = self.client.run(
            lambda: Alias.select(Alias.deployment).where(Alias.hostname == production_label(slug))
        )
        return str(row["deployment"])


@contextmanager
def monorepo(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> Iterator[Monorepo]:
    repo = tmp_path / "monorepo"
    repo.mkdir()
    for app in ("a", "b"):
        (repo / "apps" / app).mkdir(parents=True)
        (repo / "apps" / app / "index.html").write_text(f"<p>{app}")
    (repo / "index.html").write_text("<p>root")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two sites")
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
            found = Monorepo(client, github, repo, sign_up(client))
            found.deliver("installation", payload("installation.created"))
            yield found


def test_a_push_touching_one_project_of_a_monorepo_builds_only_that_one(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    with monorepo(make_settings, database_url, tmp_path) as mono:
        mono.project("a", production_branch="main", root_directory="apps/a")
        mono.project("b", production_branch="main", root_directory="apps/b")

        # The first push builds both: there is nothing to compare with yet.
        first = head(mono.repo)
        mono.push(first)
        assert mono.told(first, "a")["state"] == "success"
        assert mono.told(first, "b")["state"] == "success"
        [b_live] = mono.deployments("b")
        assert b_live["state"] == "ready"

        second = mono.commit({"apps/a/index.html": "<p>a, again"})
        mono.push(second)

        told_a, told_b = mono.told(second, "a"), mono.told(second, "b")
        [a_new, _] = mono.deployments("a")
        [b_skipped, _] = mono.deployments("b")
        why = f"no file under apps/b/ changed since {first[:7]} (1 file(s) changed elsewhere)"
        assert a_new["state"] == "ready"
        assert told_a["description"].startswith("Deployed to ")
        assert b_skipped["state"] == "skipped"
        assert b_skipped["error"] == why
        assert b_skipped["error_code"] is None
        # Success, so that a required check does not block the pull request.
        assert told_b == {
            "state": "success",
            "context": "scalemesh/b",
            "description": f"Skipped: {why}",
            "target_url": b_skipped["log_url"],
        }
        # Production still serves b's first deployment; a's moved to the new one.
        assert mono.production("b") == b_live["id"]
        assert mono.production("a") == a_new["id"]
        log = mono.client.get(
            f"/deployments/{b_skipped['id']}/logs", headers=bearer(mono.user_token)
        ).text
        assert f"Skipped: {why}. Nothing was deployed; what was live stays live." in log
        # Its GitHub Deployment (made while it was queued or building) ends inactive: GitHub
        # keeps showing the live one as active (none is made if GitHub first hears of it skipped).
        made_for_b = [
            made
            for made in mono.github.deployments.values()
            if made.request["ref"] == second
            and made.request["environment"] == "Production"
            and made.request["description"].startswith("b:")
        ]
        assert all(made.statuses[-1]["state"] == "inactive" for made in made_for_b)
