"""Cross-site requests on the JSON API: non-JSON bodies (415), cookies from elsewhere (403)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.http.csrf import origin_of
from app.tables import Project, Session, User
from tests.support.api import PASSWORD, Client, bearer, sign_up
from tests.support.pages import HTML, csrf_of

OWN = "http://localhost:8000"
"""The test settings' SCALEMESH_PUBLIC_URL (the default)."""
EVIL = "https://evil.example"
PROJECT = {"name": "web", "repo": "octocat/hello"}


def projects(client: Client) -> list[str]:
    return client.run(lambda: Project.select(Project.slug).output(as_list=True))


def with_cookie(client: Client) -> str:
    """Sign up and keep the session only as the browser's cookie."""
    token = sign_up(client)
    client.cookies.set("scalemesh_session", token)
    return token


def create(client: Client, **headers: str) -> httpx.Response:
    return client.post("/project", json=PROJECT, headers=headers)


# --- bodies that are not JSON -----------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "application/jsonp",
    ],
)
def test_a_json_route_refuses_any_other_body(client: Client, content_type: str) -> None:
    body = b'{"email": "ada@example.com", "password": "correct horse battery"}'

    response = client.post("/user/signup", content=body, headers={"Content-Type": content_type})

    assert response.status_code == 415
    assert response.json() == {
        "error": "unsupported_media_type",
        "detail": "Send the body as JSON, with Content-Type: application/json.",
    }
    assert client.run(lambda: User.count()) == 0


def test_a_body_without_a_content_type_is_refused(client: Client) -> None:
    token = sign_up(client)

    response = client.post(
        "/project", content=b'{"name": "web", "repo": "octocat/hello"}', headers=bearer(token)
    )

    assert response.status_code == 415
    assert projects(client) == []


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_is_accepted_with_or_without_its_charset(client: Client, content_type: str) -> None:
    body = b'{"email": "ada@example.com", "password": "correct horse battery"}'

    response = client.post("/user/signup", content=body, headers={"Content-Type": content_type})

    assert response.status_code == 201
    assert client.run(lambda: User.count()) == 1


def test_an_empty_body_is_explained_not_refused_as_a_media_type(client: Client) -> None:
    response = client.post("/user/signup", headers={"Content-Type": "text/plain"})

    assert response.status_code == 400


def test_routes_without_a_json_body_and_the_webhook_are_not_checked(client: Client) -> None:
    token = sign_up(client)
    assert create(client, **bearer(token)).status_code == 201

    logout = client.post(
        "/user/logout", content=b"bye", headers={**bearer(token), "Content-Type": "text/plain"}
    )
    webhook = client.post("/github/webhooks", content=b"x", headers={"Content-Type": "text/plain"})

    assert logout.status_code == 204
    assert webhook.status_code != 415


# --- cookie requests from another site --------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": "http://evil-git-main.localhost:8080"},  # a site deployed here: same-site
        {"Origin": "null"},
        {"Origin": "https://localhost:8000"},
        {"Origin": "http://localhost"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": OWN, "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_a_cookie_request_from_another_site_is_refused(
    client: Client, headers: dict[str, str]
) -> None:
    with_cookie(client)

    response = create(client, **headers)

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "another site" in response.json()["detail"]
    assert projects(client) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": OWN},
        {"Origin": "HTTP://LOCALHOST:8000"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
        {"Origin": OWN, "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_a_cookie_request_from_this_site_or_no_browser_passes(
    client: Client, headers: dict[str, str]
) -> None:
    with_cookie(client)

    response = create(client, **headers)

    assert response.status_code == 201, response.text
    assert projects(client) == ["web"]


def test_unsafe_requests_without_a_body_are_checked_too(client: Client) -> None:
    with_cookie(client)

    response = client.post("/user/logout", headers={"Origin": EVIL})

    assert response.status_code == 403
    assert client.run(lambda: Session.count()) == 1


def test_reading_with_the_cookie_from_anywhere_is_not_refused(client: Client) -> None:
    with_cookie(client)

    response = client.get("/projects", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})

    assert response.status_code == 200


def test_a_bearer_request_from_anywhere_passes(client: Client) -> None:
    token = with_cookie(client)

    response = create(client, Origin=EVIL, **{"Sec-Fetch-Site": "cross-site"}, **bearer(token))

    assert response.status_code == 201
    assert projects(client) == ["web"]


def test_a_stale_cookie_from_another_site_is_refused_as_well(client: Client) -> None:
    client.cookies.set("scalemesh_session", "not-a-session")

    response = client.post("/user/logout", headers={"Origin": EVIL})

    assert response.status_code == 403


def test_the_dashboard_forms_keep_their_own_token_check(client: Client) -> None:
    form = client.get("/signup", headers=HTML)
    data: dict[str, Any] = {"email": "ada@example.com", "password": PASSWORD}

    forged = client.post("/signup", data={**data, "csrf": "0" * 64}, headers={"Origin": EVIL})
    sent = client.post(
        "/signup",
        data={**data, "csrf": csrf_of(form.text)},
        headers={"Origin": OWN},
        follow_redirects=False,
    )

    assert forged.status_code == 403
    assert "This form has expired" in forged.text
    assert sent.status_code == 303
    assert client.run(lambda: User.count()) == 1
    # Signed in now (the cookie): the form's token decides, not the Origin rule.
    token = csrf_of(client.get("/new", headers=HTML).text)
    out = client.post(
        "/logout", data={"csrf": token}, headers={"Origin": OWN}, follow_redirects=False
    )
    assert out.status_code == 303
    assert client.run(lambda: Session.count()) == 0


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://localhost:8000", "http://localhost:8000"),
        ("https://Mesh.Example.com", "https://mesh.example.com:443"),
        ("http://mesh.example.com/", "http://mesh.example.com:80"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("null", None),
        ("ftp://", None),
        ("http://x:notaport", None),
    ],
)
def test_origins_are_compared_in_one_spelling(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin
