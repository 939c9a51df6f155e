"""Driving the dashboard like a browser in tests: HTML requests, forms and their CSRF tokens."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from app.deployments.lifecycle import DeploymentState
from app.tables import Alias, Deployment
from tests.support.api import PASSWORD, Client

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, html
    return found.group(1)


def browser_signup(client: Client, email: str = "ada@example.com") -> str:
    """Sign up through the form, as a browser does; return a CSRF token for later forms."""
    form = client.get("/signup", headers=HTML)
    response = client.post(
        "/signup",
        data={"csrf": csrf_of(form.text), "email": email, "password": PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/new"
    return csrf_of(client.get("/new", headers=HTML).text)


def browser_login(client: Client, email: str = "ada@example.com") -> None:
    """Sign in to an existing account through the form, as a browser does."""
    form = client.get("/login", headers=HTML)
    response = client.post(
        "/login",
        data={"csrf": csrf_of(form.text), "email": email, "password": PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def new_project(client: Client, csrf: str, **fields: str) -> Any:
    data = {"csrf": csrf, "name": "My Site", "repo": "octocat/hello", "production_branch": "main"}
    return client.post("/new", data={**data, **fields}, follow_redirects=False)


def deployment_ids(client: Client, slug: str) -> list[str]:
    async def read() -> list[str]:
        rows = await (
            Deployment.select(Deployment._meta.primary_key)
            .where(Deployment.project.slug == slug)
            .order_by(Deployment.created_at)
        )
        return [str(row["id"]) for row in rows]

    return client.run(read)


def make_ready(client: Client, deployment_id: str, minutes_ago: int) -> None:
    async def update() -> None:
        created = datetime.now(UTC) - timedelta(minutes=minutes_ago)
        await Deployment.update(
            {
                Deployment.state: DeploymentState.READY,
                Deployment.created_at: created,
                Deployment.started_at: created,
                Deployment.ready_at: created + timedelta(seconds=75),
                Deployment.commit_message: "Make it <blink>\nsecond line",
            }
        ).where(Deployment._meta.primary_key == deployment_id)

    client.run(update)


def production(client: Client) -> str:
    async def read() -> str:
        row = await Alias.select(Alias.deployment).where(Alias.hostname == "my-site").first()
        assert row is not None
        return str(row["deployment"])

    return client.run(read)
