"""The project page's Previews section: the preview time to live form changes what is stored,
and a bad value is refused next to it and changes nothing."""

from __future__ import annotations

import httpx
import pytest

from app.tables import Project
from tests.support.api import Client
from tests.support.pages import HTML, browser_signup, new_project

REFUSAL = "The preview time to live must be a whole number of days from 1 to 3650"


def stored_ttl(client: Client) -> object:
    async def read() -> object:
        row = await (
            Project.select(Project.preview_ttl_days).where(Project.slug == "my-site").first()
        )
        assert row is not None
        return row["preview_ttl_days"]

    return client.run(read)


def post_ttl(client: Client, csrf: str, value: str, slug: str = "my-site") -> httpx.Response:
    return client.post(
        f"/ui/projects/{slug}/preview-ttl",
        data={"csrf": csrf, "preview_ttl_days": value},
        follow_redirects=False,
    )


def test_the_form_sets_and_clears_the_preview_time_to_live(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    page = client.get("/projects/my-site", headers=HTML).text
    assert 'name="preview_ttl_days"' in page
    assert 'value=""' in page

    changed = post_ttl(client, csrf, " 14 ")

    assert (changed.status_code, changed.headers["location"]) == (
        303,
        "/projects/my-site#previews",
    )
    assert stored_ttl(client) == 14
    assert 'value="14"' in client.get("/projects/my-site", headers=HTML).text
    assert client.get("/projects/my-site").json()["preview_ttl_days"] == 14

    cleared = post_ttl(client, csrf, "")

    assert cleared.status_code == 303
    assert stored_ttl(client) is None


@pytest.mark.parametrize("value", ["0", "3651", "two weeks", "-3", "1.5", "9999999"])
def test_a_bad_value_is_refused_next_to_the_form_and_changes_nothing(
    client: Client, value: str
) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    post_ttl(client, csrf, "30")

    refused = client.post(
        "/ui/projects/my-site/preview-ttl", data={"csrf": csrf, "preview_ttl_days": value}
    )

    assert refused.status_code == 400
    assert REFUSAL in refused.text
    assert 'id="previews-error"' in refused.text
    assert stored_ttl(client) == 30


def test_the_form_needs_the_csrf_token_and_a_project_of_ones_own(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)

    forged = client.post("/ui/projects/my-site/preview-ttl", data={"preview_ttl_days": "7"})
    missing = post_ttl(client, csrf, "7", slug="nope")

    assert forged.status_code == 403
    assert missing.status_code == 404
    assert stored_ttl(client) is None
