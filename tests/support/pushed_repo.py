"""A repository on the GitHub App, pushed to for real: the API with its loops (real local builds),
the GitHub fake, signed deliveries, and what GitHub and the API then say."""

from __future__ import annotations

import json
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
from tests.support.waiting import wait_until
from tests.support.webhooks import REPO, REPO_ID, payload, signature

DEADLINE = 90.0
"""A hang guard for one build's report, never a measure."""


@dataclass
class PushedRepo:
    """The API with its loops, the GitHub fake, and one local repository on the App (its id
    `REPO_ID`) that any number of projects build."""

    client: Client
    github: FakeGitHubApi
    repo: Path
    user_token: str
    settings: Settings
    """The API's settings: its database and storage, for a proxy to serve them."""

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

        def settled() -> dict[str, Any]:
            told = self.statuses(sha, slug)
            return told[-1] if told and told[-1]["state"] != "pending" else {}

        return wait_until(settled, within=DEADLINE, interval=0.2, what=f"{slug}'s status")

    def deployments(self, slug: str) -> list[dict[str, Any]]:
        response = self.client.get(f"/projects/{slug}/deployments", headers=bearer(self.user_token))
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    def log(self, deployment_id: str) -> str:
        """The deployment's log as text."""
        response = self.client.get(
            f"/deployments/{deployment_id}/logs", headers=bearer(self.user_token)
        )
        assert response.status_code == 200, response.text
        return response.text

    def production(self, slug: str) -> str:
        [row] = self.client.run(
            lambda: Alias.select(Alias.deployment).where(Alias.hostname == production_label(slug))
        )
        return str(row["deployment"])


@contextmanager
def pushed_repo(
    make_settings: Callable[..., Settings], database_url: str, path: Path, files: dict[str, str]
) -> Iterator[PushedRepo]:
    """`files` committed on `main` in a repository at `path`; the App installed on it."""
    path.mkdir()
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "first")
    with on_the_app(make_settings, database_url, path) as found:
        yield found


@contextmanager
def on_the_app(
    make_settings: Callable[..., Settings], database_url: str, path: Path
) -> Iterator[PushedRepo]:
    """The repository at `path` (committed already) on the App: installed, a user signed up,
    the API running its loops with real local builds."""
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
            found = PushedRepo(client, github, path, sign_up(client), settings)
            found.deliver("installation", payload("installation.created"))
            yield found
