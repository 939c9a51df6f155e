"""The web dashboard through the real app: pages, forms, CSRF, and browsers vs API clients."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar.exceptions import WebSocketDisconnect

from app import hostnames
from app.asgi import create_app
from app.deployments.lifecycle import DeploymentState
from app.deployments.publish import point_alias
from app.errors import DEPLOYMENT_CODES
from app.settings import Settings
from app.tables import Alias, Deployment, EnvVar, Project, Session
from app.web.pages import CSRF_COOKIE, ago, safe_next
from app.web.rows import REASONS, duration
from tests.support.api import PASSWORD, Client, OfflineResolver, bearer, sign_up

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


# --- browsers and API clients share two paths ----------------------------------------------


def test_signed_out_browsers_are_sent_to_the_login_page(client: Client) -> None:
    for path, wanted in (
        ("/", "/login?next=/"),
        ("/new", "/login?next=/new"),
        ("/projects/my-site", "/login?next=/projects/my-site"),
        ("/deployments/0b0b", "/login?next=/deployments/0b0b"),
    ):
        response = client.get(path, headers=HTML, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, wanted)
    page = client.get("/login?next=/projects/my-site", headers=HTML)
    assert 'name="next" value="/projects/my-site"' in page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"


def test_api_clients_keep_getting_json_from_shared_paths(client: Client) -> None:
    token = sign_up(client)
    client.post("/project", json={"name": "My Site", "repo": "o/r"}, headers=bearer(token))
    deployed = client.post("/deploy", json={"project": "my-site"}, headers=bearer(token)).json()
    for path in ("/projects/my-site", f"/deployments/{deployed['id']}"):
        for accept in ({}, {"Accept": "application/json"}, {"Accept": "*/*"}):
            response = client.get(path, headers={**bearer(token), **accept})
            assert response.headers["content-type"] == "application/json", (path, accept)
            assert response.json()["id"]
        # The same paths with the cookie, from a browser, are the pages.
        page = client.get(path, headers={**HTML, "Cookie": f"scalemesh_session={token}"})
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "<!doctype html>" in page.text
    # Deeper API paths are never pages, even for a browser.
    listing = client.get("/projects/my-site/deployments", headers={**HTML, **bearer(token)})
    assert listing.json()[0]["id"] == deployed["id"]


def test_websockets_pass_the_page_router_untouched(client: Client) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/deployments/0b0b/logs/ws", headers=HTML) as socket,
    ):
        socket.receive_text()
    assert closed.value.code == 4401


def test_pages_are_not_in_the_api_schema(client: Client) -> None:
    paths = client.get("/schema").json()["paths"]
    assert not [path for path in paths if path in ("/", "/login", "/new") or "/ui" in path]


def test_static_files_are_served(client: Client) -> None:
    script = client.get("/ui/static/logs.js")
    assert script.status_code == 200
    assert "WebSocket" in script.text
    assert client.get("/ui/static/app.css").status_code == 200


# --- accounts ---------------------------------------------------------------------------------


def test_sign_up_sign_out_and_sign_in_through_forms(client: Client) -> None:
    csrf = browser_signup(client)
    dashboard = client.get("/", headers=HTML)
    assert "ada@example.com" in dashboard.text
    assert "No projects yet" in dashboard.text
    # Signed in, the account pages send you on.
    assert client.get("/signup", follow_redirects=False).headers["location"] == "/"
    assert client.get("/login?next=/new", follow_redirects=False).headers["location"] == "/new"

    signed_out = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/login")
    assert client.run(lambda: Session.count()) == 0
    assert client.get("/", follow_redirects=False).status_code == 303
    # Signing out twice is harmless.
    again = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert again.headers["location"] == "/login?next=/"

    login = client.get("/login?next=/new", headers=HTML)
    wrong = client.post(
        "/login",
        data={"csrf": csrf_of(login.text), "email": "ada@example.com", "password": "nope-nope"},
    )
    assert wrong.status_code == 401
    assert "Wrong email or password." in wrong.text
    assert 'value="ada@example.com"' in wrong.text
    right = client.post(
        "/login",
        data={
            "csrf": csrf_of(login.text),
            "email": "ADA@example.com",
            "password": PASSWORD,
            "next": "/new",
        },
        follow_redirects=False,
    )
    assert (right.status_code, right.headers["location"]) == (303, "/new")
    assert "httponly" in right.headers["set-cookie"].lower()
    assert client.get("/", headers=HTML).status_code == 200


def test_sign_up_problems_are_shown_on_the_form(client: Client) -> None:
    sign_up(client, "taken@example.com")
    form = client.get("/signup", headers=HTML)
    for email, password, status, message in (
        ("taken@example.com", PASSWORD, 409, "already exists"),
        ("not-an-email", PASSWORD, 400, "is not an email address"),
        ("new@example.com", "short", 400, "at least 8 characters"),
    ):
        response = client.post(
            "/signup", data={"csrf": csrf_of(form.text), "email": email, "password": password}
        )
        assert response.status_code == status
        assert message in response.text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/projects/x?tab=env", "/projects/x?tab=env"),
        ("", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_next_only_leads_to_this_site(raw: str, expected: str) -> None:
    assert safe_next(raw) == expected


def test_forms_without_the_right_csrf_token_are_refused(client: Client) -> None:
    csrf = browser_signup(client)
    for path in (
        "/new",
        "/logout",
        "/ui/projects/my-site/deploy",
        "/ui/projects/my-site/env",
        "/ui/deployments/x/promote",
        "/ui/deployments/x/cancel",
    ):
        for data in ({}, {"csrf": "0" * 64}):
            response = client.post(path, data=data, follow_redirects=False)
            assert response.status_code == 403, path
            assert "This form has expired" in response.text
    assert client.post("/login", data={"email": "x@example.com"}).status_code == 403
    assert client.post("/signup", data={"email": "x@example.com"}).status_code == 403
    # A token from another browser (another CSRF cookie) is refused too.
    client.cookies.set(CSRF_COOKIE, "a" * 43)
    assert new_project(client, csrf).status_code == 403
    # Still signed in: nothing above changed anything.
    assert client.get("/", headers=HTML).status_code == 200
    assert client.run(lambda: Project.count()) == 0


def test_a_token_is_bound_to_its_session(client: Client) -> None:
    csrf = browser_signup(client)
    client.post("/logout", data={"csrf": csrf})
    login = client.get("/login", headers=HTML)
    client.post(
        "/login",
        data={"csrf": csrf_of(login.text), "email": "ada@example.com", "password": PASSWORD},
    )
    # The old session's token does not work in the new session.
    assert new_project(client, csrf).status_code == 403


def test_signed_out_form_posts_go_to_the_login_page(client: Client) -> None:
    for path in (
        "/new",
        "/ui/projects/x/deploy",
        "/ui/projects/x/env",
        "/ui/deployments/x/promote",
        "/ui/deployments/x/cancel",
    ):
        response = client.post(path, data={"csrf": "x"}, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, "/login?next=/")


# --- projects -----------------------------------------------------------------------------


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
    added = client.post(
        url, data={"csrf": csrf, "name": "API_KEY", "value": "first-secret"}, follow_redirects=False
    )
    assert (added.status_code, added.headers["location"]) == (303, "/projects/my-site#env")
    client.post(url, data={"csrf": csrf, "name": "API_KEY", "value": "second-secret"})
    client.post(url, data={"csrf": csrf, "name": "OTHER", "value": "x"})
    page = client.get("/projects/my-site", headers=HTML).text
    assert "<code>API_KEY</code>" in page
    assert "secret" not in page
    rows = client.run(lambda: EnvVar.select(EnvVar.name).order_by(EnvVar.name))
    assert [row["name"] for row in rows] == ["API_KEY", "OTHER"]

    deleted = client.post(url, data={"csrf": csrf, "name": "OTHER", "delete": "1"})
    assert deleted.status_code == 200
    assert "<code>OTHER</code>" not in deleted.text
    assert client.run(lambda: EnvVar.count()) == 1

    refused = client.post(url, data={"csrf": csrf, "name": "AWS_SECRET", "value": "x"})
    assert refused.status_code == 400
    assert "is reserved by Scale Mesh" in refused.text
    assert 'value="AWS_SECRET"' in refused.text
    missing = client.post("/ui/projects/nope/env", data={"csrf": csrf, "name": "A", "value": "b"})
    assert missing.status_code == 404


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
    assert 'action="/ui/deployments/' not in page  # no Cancel button once it has ended
    table = client.get("/ui/projects/my-site/deployments").text
    assert '<span class="why"><strong>Cancelled:</strong> cancelled</span>' in table
    # Cancelling again changes nothing.
    assert client.post(url, data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert client.post("/ui/deployments/nope/cancel", data={"csrf": csrf}).status_code == 404


def _make_ready(client: Client, deployment_id: str, minutes_ago: int) -> None:
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


def _production(client: Client) -> str:
    async def read() -> str:
        row = await Alias.select(Alias.deployment).where(Alias.hostname == "my-site").first()
        assert row is not None
        return str(row["deployment"])

    return client.run(read)


def test_promote_and_rollback_move_production(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    for ref in ("main", "feature"):
        client.post("/ui/projects/my-site/deploy", data={"csrf": csrf, "ref": ref})
    old, new = deployment_ids(client, "my-site")
    _make_ready(client, old, 10)
    _make_ready(client, new, 5)
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
    assert _production(client) == old
    promote = client.get("/projects/my-site", headers=HTML).text
    assert "Promote</button>" in promote

    client.post("/ui/projects/my-site/deploy", data={"csrf": csrf})
    queued = deployment_ids(client, "my-site")[-1]
    refused = client.post(f"/ui/deployments/{queued}/promote", data={"csrf": csrf})
    assert refused.status_code == 409
    assert "Only a ready deployment can be promoted; this one is queued." in refused.text
    assert _production(client) == old
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


def test_times_read_at_a_glance() -> None:
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    assert ago(None) == "—"
    assert ago(now - timedelta(seconds=3), now) == "just now"
    assert ago(now - timedelta(seconds=42), now) == "42 s ago"
    assert ago(now - timedelta(minutes=5), now) == "5 min ago"
    assert ago(now - timedelta(hours=3), now) == "3 h ago"
    assert ago(now - timedelta(days=2), now) == "2 d ago"
    assert ago(now + timedelta(seconds=5), now) == "just now"
    assert duration(None) == "—"
    assert duration(12.4) == "12 s"
    assert duration(75) == "1 min 15 s"


def test_the_dashboard_names_every_way_a_deployment_can_end() -> None:
    assert set(REASONS) == DEPLOYMENT_CODES
