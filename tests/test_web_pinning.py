"""The dashboard after a rollback: the "Production is pinned" banner, and its Unpin button."""

from __future__ import annotations

from app.deployments.publish import point_alias
from app.tables import Project
from tests.support.api import Client
from tests.support.pages import (
    HTML,
    browser_signup,
    deployment_ids,
    make_ready,
    new_project,
    production,
)


def two_ready_production_deployments(client: Client, csrf: str) -> tuple[str, str]:
    """The older and the newer, production serving the newer."""
    new_project(client, csrf)
    client.post("/ui/projects/my-site/deploy", data={"csrf": csrf})
    [old] = deployment_ids(client, "my-site")
    make_ready(client, old, 10)
    client.post("/ui/projects/my-site/deploy", data={"csrf": csrf})
    [new] = set(deployment_ids(client, "my-site")) - {old}
    make_ready(client, new, 5)
    project_id = int(client.run(lambda: Project.select(Project._meta.primary_key).first())["id"])
    client.run(lambda: point_alias("my-site", project_id, new))
    return old, new


def test_a_rollback_shows_the_pinned_banner_until_unpinned(client: Client) -> None:
    csrf = browser_signup(client)
    old, new = two_ready_production_deployments(client, csrf)
    assert "Production is pinned" not in client.get("/projects/my-site", headers=HTML).text

    client.post(f"/ui/deployments/{old}/promote", data={"csrf": csrf})

    page = client.get("/projects/my-site", headers=HTML).text
    assert '<h2 id="pinned-h">Production is pinned</h2>' in page
    assert f'<a href="/deployments/{old}"><code>{old[:8]}</code></a>' in page
    assert "rolled back by ada@example.com" in page
    assert 'action="/ui/projects/my-site/unpin"' in page
    assert production(client) == old

    unpinned = client.post(
        "/ui/projects/my-site/unpin", data={"csrf": csrf}, follow_redirects=False
    )

    assert (unpinned.status_code, unpinned.headers["location"]) == (303, "/projects/my-site")
    assert production(client) == new
    assert "Production is pinned" not in client.get("/projects/my-site", headers=HTML).text


def test_others_cannot_unpin_and_see_no_button(client: Client) -> None:
    csrf = browser_signup(client)
    old, _ = two_ready_production_deployments(client, csrf)
    client.post(f"/ui/deployments/{old}/promote", data={"csrf": csrf})
    client.cookies.clear()
    mallory = browser_signup(client, "mallory@example.com")

    response = client.post("/ui/projects/my-site/unpin", data={"csrf": mallory})

    assert response.status_code == 404
    assert production(client) == old
