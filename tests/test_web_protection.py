"""The project page's Protection section: the level select and the bypass secret, shown once."""

from __future__ import annotations

import re

from app import preview_tokens as tokens
from app.tables import Project
from tests.support.api import Client
from tests.support.pages import HTML, browser_signup, new_project
from tests.support.protection import KEY


def stored(client: Client) -> dict[str, object]:
    async def read() -> dict[str, object]:
        row = await (
            Project.select(Project.protection, Project.bypass_hash)
            .where(Project.slug == "my-site")
            .first()
        )
        assert row is not None
        return dict(row)

    return client.run(read)


def test_the_protection_select_changes_the_level(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    page = client.get("/projects/my-site", headers=HTML).text
    assert 'name="protection"' in page
    assert '<option value="none" selected>' in page

    changed = client.post(
        "/ui/projects/my-site/protection",
        data={"csrf": csrf, "protection": "all"},
        follow_redirects=False,
    )
    refused = client.post(
        "/ui/projects/my-site/protection", data={"csrf": csrf, "protection": "everyone"}
    )
    forged = client.post("/ui/projects/my-site/protection", data={"protection": "none"})
    missing = client.post("/ui/projects/nope/protection", data={"csrf": csrf, "protection": "all"})

    assert (changed.status_code, changed.headers["location"]) == (
        303,
        "/projects/my-site#protection",
    )
    assert refused.status_code == 400
    assert forged.status_code == 403
    assert missing.status_code == 404
    assert stored(client)["protection"] == "all"
    assert '<option value="all" selected>' in client.get("/projects/my-site", headers=HTML).text


def test_create_bypass_secret_shows_it_once_and_stores_its_hash(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)

    response = client.post("/ui/projects/my-site/protection-bypass", data={"csrf": csrf})

    assert response.status_code == 200
    found = re.search(r'<code id="bypass-secret">([^<]+)</code>', response.text)
    assert found
    assert stored(client)["bypass_hash"] == tokens.bypass_hash(KEY, found.group(1))
    assert found.group(1) not in client.get("/projects/my-site", headers=HTML).text
    missing = client.post("/ui/projects/nope/protection-bypass", data={"csrf": csrf})
    assert missing.status_code == 404
