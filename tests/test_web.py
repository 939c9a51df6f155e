"""The web dashboard through the real app: browsers vs API clients, accounts, forms and CSRF."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from litestar.exceptions import WebSocketDisconnect

from app.errors import DEPLOYMENT_CODES
from app.local_paths import local_path
from app.tables import Project, Session
from app.web.pages import CSRF_COOKIE, ago
from app.web.rows import REASONS, duration
from tests.support.api import PASSWORD, Client, bearer, sign_up
from tests.support.pages import (
    HTML,
    browser_signup,
    csrf_of,
    new_project,
)


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
        ("/x\x7f", "/"),
        ("/" + "a" * 2000, "/"),
    ],
)
def test_next_only_leads_to_this_site(raw: str, expected: str) -> None:
    assert local_path(raw) == expected


def test_forms_without_the_right_csrf_token_are_refused(client: Client) -> None:
    csrf = browser_signup(client)
    for path in (
        "/new",
        "/logout",
        "/ui/projects/my-site/deploy",
        "/ui/projects/my-site/env",
        "/ui/deployments/x/promote",
        "/ui/deployments/x/cancel",
        "/ui/deployments/x/redeploy",
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
        "/ui/deployments/x/redeploy",
    ):
        response = client.post(path, data={"csrf": "x"}, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, "/login?next=/")


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
