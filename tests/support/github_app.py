"""The GitHub App inside the API, as its tests drive it: deliveries in, loops run, rows read."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from app.hostnames import deployment_label
from app.reporting.reporter import Reporter
from app.retention.chore_loop import Retention
from app.tables import (
    Deployment,
    Installation,
    Repository,
)
from tests.support.api import Client
from tests.support.deployments import FakeRunner, fail, succeed, tick
from tests.support.github_fake import FakeGitHubApi
from tests.support.webhooks import REPO, payload, signature

ROOT = Path(__file__).resolve().parents[2]


PUSH_SHA = "f1c2d3e4f5a60718293a4b5c6d7e8f9012345678"


PR_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


class App:
    """The test's view of the running app: send deliveries, run the loops, read the rows."""

    def __init__(self, client: Client, runner: FakeRunner, github: FakeGitHubApi) -> None:
        self.client = client
        self.runner = runner
        self.github = github
        self.services = client.app.state.services

    def deliver(
        self,
        event: str,
        body: dict[str, Any] | bytes,
        *,
        delivery: str | None = None,
        move_head: bool = True,
    ) -> Any:
        """Sign and post a delivery, then run the worker. A push first moves the fake GitHub's
        branch to its `after`, as the push did on GitHub; `move_head=False` delivers it late
        (or replays it), the branch left where it is."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        if move_head and event == "push":
            push_to(self.github, json.loads(raw))
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


def push_to(github: FakeGitHubApi, push: dict[str, Any]) -> None:
    """What the push did on GitHub: its branch now points at `after` (or is gone)."""
    ref, after = str(push.get("ref", "")), str(push.get("after", ""))
    if not ref.startswith("refs/heads/") or "repository" not in push:
        return
    repository, branch = push["repository"]["full_name"], ref.removeprefix("refs/heads/")
    if push.get("deleted") or after == "0" * 40:
        github.refs.delete_branch(repository, branch)
    else:
        github.refs.set_branch(repository, branch, after)


def deployment_urls(app: App, deployment: dict[str, Any]) -> tuple[str, str]:
    """The deployment's own URL and its log viewer's."""
    label = deployment_label("web", str(deployment["id"]))
    return (
        f"http://{label}.localhost:8080",
        f"http://localhost:8000/deployments/{deployment['id']}",
    )


def post_raw(client: Client, body: bytes, **headers: str) -> Any:
    return client.post("/github/webhooks", content=body, headers=headers)


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


def pr_event(name: str, **changes: Any) -> dict[str, Any]:
    body = payload(f"pull_request.{name}")
    body["pull_request"]["head"].update(changes)
    return body


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


def retention_at(app: App, when: datetime) -> Retention:
    """The app's retention pass, its clock stopped at `when`."""
    loop: Retention = app.services.reconciler.retention
    loop.clock = lambda: when
    return loop


def delete_event(ref: str, ref_type: str = "branch") -> dict[str, object]:
    """A `delete` delivery of `ref` in the fixtures' repository."""
    opened = pr_event("opened")
    return {
        "ref": ref,
        "ref_type": ref_type,
        "repository": opened["repository"],
        "installation": opened["installation"],
    }
