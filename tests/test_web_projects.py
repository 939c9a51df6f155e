"""The dashboard's project and deployment pages: forms, deploys, env vars, cancel, promote."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app import hostnames
from app.asgi import create_app
from app.deployments.publish import point_alias
from app.settings import Settings
from app.tables import Alias, Deployment, EnvVar, Project
from tests.support.api import Client, OfflineResolver, bearer, sign_up
from tests.support.pages import (
    HTML,
    browser_signup,
    deployment_ids,
    make_ready,
    new_project,
    production,
)


def test_the_new_project_form_creates_a_project(client: Client) -> None:
    csrf = browser_signup(client)
    response = new_project(
        client,
        csrf,
        root_directory="site",
        install_command="npm ci",
        build_command="npm run build",
        output_directory="out",
    )
    assert (response.status_code, response.headers["location"]) == (303, "/projects/my-site")
    row = client.run(lambda: Project.select().first())
    assert row is not None
    assert (row["name"], row["github_repository"], row["root_directory"]) == (
        "My Site",
        "octocat/hello",
        "site",
    )
    assert (row["install_command"], row["build_command"], row["output_directory"]) == (
        "npm ci",
        "npm run build",
        "out",
    )
    dashboard = client.get("/", headers=HTML).text
    assert 'href="/projects/my-site"' in dashboard
    assert "http://my-site.localhost:8080" in dashboard
    assert "Not deployed yet" in dashboard


def test_the_new_project_form_shows_each_fields_problem(client: Client) -> None:
    csrf = browser_signup(client)
    response = new_project(
        client,
        csrf,
        name="<script>alert(1)</script>!!!",
        repo="git@github.com:o/r.git",
        production_branch="bad..branch",
        root_directory="../up",
        output_directory="/abs",
        install_command="npm ci\nrm -rf /",
        build_command="echo 'unclosed",
    )
    assert response.status_code == 400
    html = response.text
    for field, message in (
        ("repo", "SSH URLs are not supported"),
        ("production_branch", "is not a valid git branch name"),
        ("root_directory", "must be a path inside the repository"),
        ("output_directory", "must be a path inside the repository"),
        ("install_command", "must be one line"),
        ("build_command", "cannot be split into arguments"),
    ):
        found = re.search(rf'<p class="error" id="e-{field}">([^<]*)</p>', html)
        assert found, field
        assert message in found.group(1), field
    # What was typed comes back, escaped.
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;!!!" in html
    assert client.run(lambda: Project.count()) == 0

    nameless = new_project(client, csrf, name="!!!", repo="")
    assert re.search(r'id="e-name">[^<]*needs at least one letter', nameless.text)
    assert re.search(r'id="e-repo">[^<]*repo is required', nameless.text)


def test_the_new_project_form_explains_a_taken_name_and_a_long_url(client: Client) -> None:
    csrf = browser_signup(client)
    assert new_project(client, csrf).status_code == 303
    taken = new_project(client, csrf)
    assert taken.status_code == 400
    assert re.search(r'id="e-name">[^<]*try the name &#39;my-site-2&#39;', taken.text)
    long_url = "https://git.example.com/" + "a" * 600
    too_long = new_project(client, csrf, name="Other", repo=long_url)
    assert too_long.status_code == 400
    assert re.search(r'id="e-repo">Expected `str` of length &lt;= 500', too_long.text)


def test_unknown_and_other_peoples_projects_are_not_found(client: Client) -> None:
    other = sign_up(client, "bob@example.com")
    client.post("/project", json={"name": "Bobs", "repo": "o/r"}, headers=bearer(other))
    assert client.get("/ui/projects/bobs/deployments").status_code == 404  # signed out
    browser_signup(client)
    for path in ("/projects/bobs", "/projects/nothing-here"):
        response = client.get(path, headers=HTML)
        assert response.status_code == 404
        assert "You have no project" in response.text
    assert client.get("/ui/projects/bobs/deployments").status_code == 404


def test_env_vars_are_added_replaced_and_deleted_but_never_shown(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    url = "/ui/projects/my-site/env"
    everywhere = {"csrf": csrf, "production": "1", "preview": "1"}
    added = client.post(
        url, data={**everywhere, "name": "API_KEY", "value": "first-secret"}, follow_redirects=False
    )
    assert (added.status_code, added.headers["location"]) == (303, "/projects/my-site#env")
    client.post(url, data={**everywhere, "name": "API_KEY", "value": "second-secret"})
    client.post(url, data={**everywhere, "name": "OTHER", "value": "x"})
    page = client.get("/projects/my-site", headers=HTML).text
    assert "<code>API_KEY</code>" in page
    assert "first-secret" not in page
    assert "second-secret" not in page
    rows = client.run(lambda: EnvVar.select(EnvVar.name).order_by(EnvVar.name))
    assert [row["name"] for row in rows] == ["API_KEY", "API_KEY", "OTHER", "OTHER"]

    deleted = client.post(url, data={"csrf": csrf, "name": "OTHER", "delete": "1"})
    assert deleted.status_code == 200
    assert "<code>OTHER</code>" not in deleted.text
    assert client.run(lambda: EnvVar.count()) == 2

    refused = client.post(url, data={**everywhere, "name": "AWS_SECRET", "value": "x"})
    assert refused.status_code == 400
    assert "is reserved by Scale Mesh" in refused.text
    assert 'value="AWS_SECRET"' in refused.text
    missing = client.post("/ui/projects/nope/env", data={"csrf": csrf, "name": "A", "value": "b"})
    assert missing.status_code == 404


def test_env_vars_are_set_and_shown_per_scope(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    url = "/ui/projects/my-site/env"
    api_url = {"csrf": csrf, "name": "API_URL"}
    client.post(url, data={**api_url, "value": "prod-secret", "production": "1"})
    client.post(url, data={**api_url, "value": "preview-secret", "preview": "1"})
    client.post(url, data={"csrf": csrf, "name": "FLAG", "value": "on", "branch": " staging "})

    page = client.get("/projects/my-site", headers=HTML).text
    scoped = client.get("/projects/my-site").json()["env_scopes"]
    client.post(url, data={"csrf": csrf, "name": "API_URL", "scope": "preview", "delete": "1"})
    after = client.get("/projects/my-site").json()["env_scopes"]
    none = client.post(url, data={"csrf": csrf, "name": "X", "value": "1"})
    bad = client.post(url, data={"csrf": csrf, "name": "X", "value": "1", "branch": "a..b"})
    missing = client.post(
        url, data={"csrf": csrf, "name": "FLAG", "scope": "preview", "delete": "1"}
    )

    assert scoped == {"API_URL": ["production", "preview"], "FLAG": ["branch:staging"]}
    assert 'aria-label="Delete API_URL from preview"' in page
    assert "<span>branch:staging</span>" in page
    assert "prod-secret" not in page
    assert "preview-secret" not in page
    assert after == {"API_URL": ["production"], "FLAG": ["branch:staging"]}
    assert none.status_code == 400
    assert "Choose where the value applies" in none.text
    assert bad.status_code == 400
    assert "&#39;a..b&#39; is not a valid branch name" in bad.text
    assert missing.status_code == 404
    assert "my-site has no env var FLAG in preview." in missing.text
    assert client.run(lambda: EnvVar.count()) == 2


def test_the_deploy_button_queues_a_build_and_opens_its_page(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    deploy = "/ui/projects/my-site/deploy"
    response = client.post(deploy, data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303
    (deployment_id,) = deployment_ids(client, "my-site")
    assert response.headers["location"] == f"/deployments/{deployment_id}"
    row = client.run(lambda: Deployment.select().first())
    assert row is not None
    assert (row["state"], row["branch"], row["target"]) == ("queued", "main", "production")

    preview = client.post(deploy, data={"csrf": csrf, "ref": "feature/x"}, follow_redirects=False)
    assert preview.status_code == 303
    bad = client.post(deploy, data={"csrf": csrf, "ref": "bad..ref"})
    assert bad.status_code == 400
    assert "is not a branch, a tag or a full sha" in bad.text
    assert client.post("/ui/projects/nope/deploy", data={"csrf": csrf}).status_code == 404

    page = client.get("/projects/my-site", headers=HTML).text
    assert page.count('data-state="queued"') == 2
    assert "feature/x" in page
    fragment = client.get("/ui/projects/my-site/deployments")
    assert fragment.status_code == 200
    assert fragment.text.count("<tr data-deployment=") == 2
    assert "<html" not in fragment.text


def test_the_deployment_page_has_the_log_viewer(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    client.post("/ui/projects/my-site/deploy", data={"csrf": csrf})
    (deployment_id,) = deployment_ids(client, "my-site")
    page = client.get(f"/deployments/{deployment_id}", headers=HTML)
    assert page.status_code == 200
    html = page.text
    assert f'data-socket="/deployments/{deployment_id}/logs/ws"' in html
    assert f'href="/deployments/{deployment_id}/logs"' in html
    assert 'id="state" class="badge state-queued"' in html
    assert "/ui/static/logs.js" in html
    assert "script-src" not in page.headers["content-security-policy"]  # 'self' only
    assert page.headers["x-frame-options"] == "DENY"
    for missing in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        response = client.get(f"/deployments/{missing}", headers=HTML)
        assert response.status_code == 404


def test_cancel_stops_an_unfinished_deployment(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    client.post("/ui/projects/my-site/deploy", data={"csrf": csrf})
    (deployment_id,) = deployment_ids(client, "my-site")
    url = f"/ui/deployments/{deployment_id}/cancel"
    response = client.post(url, data={"csrf": csrf}, follow_redirects=False)
    assert response.headers["location"] == f"/deployments/{deployment_id}"
    row = client.run(lambda: Deployment.select(Deployment.state, Deployment.finished_at).first())
    assert row is not None
    assert row["state"] == "cancelled"
    assert row["finished_at"] is not None
    page = client.get(f"/deployments/{deployment_id}", headers=HTML).text
    assert "Deployment cancelled: cancelled" in page
    assert f'action="{url}"' not in page  # no Cancel button once it has ended
    table = client.get("/ui/projects/my-site/deployments").text
    assert '<span class="why"><strong>Cancelled:</strong> cancelled</span>' in table
    # Cancelling again changes nothing.
    assert client.post(url, data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert client.post("/ui/deployments/nope/cancel", data={"csrf": csrf}).status_code == 404


def test_promote_and_rollback_move_production(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    for ref in ("main", "feature"):
        client.post("/ui/projects/my-site/deploy", data={"csrf": csrf, "ref": ref})
    old, new = deployment_ids(client, "my-site")
    make_ready(client, old, 10)
    make_ready(client, new, 5)
    project_id = int(client.run(lambda: Project.select(Project._meta.primary_key).first())["id"])
    client.run(lambda: point_alias("my-site", project_id, new))

    page = client.get("/projects/my-site", headers=HTML).text
    assert "Rollback</button>" in page
    assert "current production" in page
    assert "1 min 15 s" in page
    assert "Make it &lt;blink&gt;" in page
    assert "second line" not in page
    assert f"http://my-site-{hostnames.short_id(new)}.localhost:8080" in page

    rollback = client.post(
        f"/ui/deployments/{old}/promote", data={"csrf": csrf}, follow_redirects=False
    )
    assert (rollback.status_code, rollback.headers["location"]) == (303, "/projects/my-site")
    assert production(client) == old
    promote = client.get("/projects/my-site", headers=HTML).text
    assert "Promote</button>" in promote

    client.post("/ui/projects/my-site/deploy", data={"csrf": csrf})
    queued = deployment_ids(client, "my-site")[-1]
    refused = client.post(f"/ui/deployments/{queued}/promote", data={"csrf": csrf})
    assert refused.status_code == 409
    assert "Only a ready deployment can be promoted; this one is queued." in refused.text
    assert production(client) == old
    missing = client.post("/ui/deployments/nope/promote", data={"csrf": csrf})
    assert missing.status_code == 404

    dashboard = client.get("/", headers=HTML).text
    assert "state-queued" in dashboard


def test_names_and_messages_are_escaped_everywhere(client: Client) -> None:
    csrf = browser_signup(client, "x@example.com")
    new_project(client, csrf, name="<b>bold</b> & co")
    dashboard = client.get("/", headers=HTML).text
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in dashboard
    assert "<b>bold" not in dashboard


@pytest.fixture
def github_client(make_settings: Callable[..., Settings], database_url: str) -> Iterator[Client]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    settings = make_settings(
        SCALEMESH_DATABASE_URL=database_url,
        SCALEMESH_GITHUB_APP_ID="1",
        SCALEMESH_GITHUB_PRIVATE_KEY=pem,
        SCALEMESH_GITHUB_WEBHOOK_SECRET="hook",
        SCALEMESH_GITHUB_APP_SLUG="scale-mesh",
    )
    app = create_app(settings, ref_resolver=OfflineResolver(), reconcile=False)
    with Client(app) as test_client:
        yield test_client


def test_the_project_page_links_to_the_github_app(github_client: Client) -> None:
    csrf = browser_signup(github_client)
    new_project(github_client, csrf)
    page = github_client.get("/projects/my-site", headers=HTML).text
    assert "not installed" in page
    assert 'href="https://github.com/apps/scale-mesh/installations/new"' in page


def test_another_accounts_forms_reach_nothing_of_this_one(client: Client) -> None:
    """Every dashboard page and form answers 404 for another account's project or deployment,
    and changes nothing: not its deployments, not production, not its env vars."""
    csrf = browser_signup(client)
    new_project(client, csrf)
    client.post("/ui/projects/my-site/deploy", data={"csrf": csrf})
    (ready,) = deployment_ids(client, "my-site")
    make_ready(client, ready, minutes_ago=1)
    client.post("/ui/projects/my-site/deploy", data={"csrf": csrf})
    (queued,) = set(deployment_ids(client, "my-site")) - {ready}
    client.cookies.clear()
    mallory = browser_signup(client, "mallory@example.com")

    for path in ("/projects/my-site", f"/deployments/{ready}"):
        assert client.get(path, headers=HTML).status_code == 404, path
    assert client.get("/ui/projects/my-site/deployments").status_code == 404
    for path, fields in [
        ("/ui/projects/my-site/deploy", {}),
        ("/ui/projects/my-site/env", {"name": "API_KEY", "value": "stolen"}),
        (f"/ui/deployments/{queued}/cancel", {}),
        (f"/ui/deployments/{ready}/promote", {}),
    ]:
        response = client.post(path, data={"csrf": mallory, **fields}, follow_redirects=False)
        assert response.status_code == 404, path
    assert "my-site" not in client.get("/", headers=HTML).text

    assert deployment_ids(client, "my-site") == [ready, queued]
    states = client.run(lambda: Deployment.select(Deployment.state).order_by(Deployment.created_at))
    assert [row["state"] for row in states] == ["ready", "queued"]
    assert client.run(lambda: Alias.count()) == 0  # nothing was promoted
    assert client.run(lambda: EnvVar.count()) == 0
