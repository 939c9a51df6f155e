"""The API's half of protected previews: `/auth/deployment` vouches for a signed-in viewer who
may see the project (with a token the proxy accepts), and the bypass secret is shown once and
stored only as its keyed hash."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from app import preview_tokens as tokens
from app.errors import ErrorCode, UserError
from app.settings import Settings
from app.tables import Domain, Project
from tests.support.api import Client, bearer, sign_up
from tests.support.projects import create
from tests.support.protection import KEY, browser_session, preview_of, through_proxy
from tests.support.proxy import INDEX

HOST = "web-git-feature.localhost"


def own_preview(client: Client, settings: Settings) -> str:
    """Ada's project `web` with a preview at `web-git-feature`; Ada stays signed in (cookie)."""
    browser_session(client, "ada@example.com")
    assert create(client, "", name="web").status_code == 201  # the cookie signs it in
    changed = client.patch("/projects/web", json={"protection": "previews"})
    assert changed.json()["protection"] == "previews"
    return preview_of(client, settings, "web")


def test_an_allowed_viewer_is_sent_back_with_a_token_the_proxy_accepts(
    client: Client, settings: Settings
) -> None:
    own_preview(client, settings)

    response = client.get(
        "/auth/deployment",
        params={"host": HOST, "next": "/docs?a=1"},
        follow_redirects=False,
    )

    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc, location.path) == (
        "http",
        f"{HOST}:8080",
        tokens.AUTH_PATH,
    )
    query = parse_qs(location.query)
    assert query["next"] == ["/docs?a=1"]
    [token] = query["token"]
    assert tokens.verify(KEY, tokens.HANDOFF, "web-git-feature", token)
    # The proxy takes it: a cookie, then the deployment itself with that cookie.
    (hand_off,) = client.run(
        lambda: through_proxy(settings, f"{HOST}:8080", (f"{location.path}?{location.query}", ""))
    )
    assert hand_off.status_code == 302
    assert hand_off.headers["location"] == "/docs?a=1"
    preview_cookie = hand_off.headers["set-cookie"].split(";")[0]
    with_cookie, without = client.run(
        lambda: through_proxy(settings, f"{HOST}:8080", ("/", preview_cookie), ("/", ""))
    )
    assert (with_cookie.status_code, with_cookie.content) == (200, INDEX)
    assert without.status_code == 302


def test_another_account_gets_a_404_and_no_token(client: Client, settings: Settings) -> None:
    own_preview(client, settings)
    client.cookies.clear()
    browser_session(client, "eve@example.com")

    response = client.get(
        "/auth/deployment", params={"host": HOST, "next": "/"}, follow_redirects=False
    )
    unknown = client.get(
        "/auth/deployment",
        params={"host": "nope-git-x.localhost", "next": "/"},
        follow_redirects=False,
    )

    malformed = client.get(
        "/auth/deployment", params={"host": "not a host!", "next": "/"}, follow_redirects=False
    )

    for refused in (response, unknown, malformed):
        assert refused.status_code == 404
        assert "location" not in refused.headers
        assert "token" not in refused.text
        assert refused.headers["content-type"].startswith("text/html")


def test_a_failure_to_check_access_is_answered_as_itself_not_as_not_found(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    own_preview(client, settings)

    async def github_down(user_id: int, project_id: int) -> None:
        raise UserError(ErrorCode.GITHUB_UNAVAILABLE, "GitHub did not answer.")

    monkeypatch.setattr(client.app.state.services.access, "project_by_id", github_down)
    response = client.get(
        "/auth/deployment", params={"host": HOST, "next": "/"}, follow_redirects=False
    )

    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    assert "location" not in response.headers


def verified_domain(client: Client, name: str, *, slug: str = "web", **values: object) -> None:
    """A custom domain of project `slug`, verified unless `values` say otherwise."""

    async def insert() -> None:
        project = await Project.select(Project.id).where(Project.slug == slug).first()
        assert project is not None
        fields: dict[str, object] = {"verified_at": datetime.now(UTC), **values}
        await Domain.insert(Domain(name=name, project=project["id"], token="t" * 32, **fields))

    client.run(insert)


def test_a_viewer_of_a_custom_domain_gets_a_token_bound_to_it_and_its_project(
    client: Client, settings: Settings
) -> None:
    own_preview(client, settings)
    verified_domain(client, "preview.web.dev", git_branch="feature")  # follows web-git-feature

    response = client.get(
        "/auth/deployment",
        params={"host": "preview.web.dev", "next": "/"},
        follow_redirects=False,
    )

    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert location.netloc == "preview.web.dev:8080"
    [token] = parse_qs(location.query)["token"]
    project_id = client.run(lambda: Project.select(Project.id).first())["id"]
    assert tokens.verify(KEY, tokens.HANDOFF, tokens.binding("preview.web.dev", project_id), token)
    assert not tokens.verify(KEY, tokens.HANDOFF, "preview.web.dev", token)
    host = "preview.web.dev:8080"
    (hand_off,) = client.run(
        lambda: through_proxy(settings, host, (f"{location.path}?{location.query}", ""))
    )
    assert hand_off.status_code == 302
    preview_cookie = hand_off.headers["set-cookie"].split(";")[0]
    (with_cookie,) = client.run(lambda: through_proxy(settings, host, ("/", preview_cookie)))
    assert (with_cookie.status_code, with_cookie.content) == (200, INDEX)


def test_a_pending_custom_domain_gets_no_token(client: Client, settings: Settings) -> None:
    own_preview(client, settings)
    verified_domain(client, "*.web.dev", verified_at=None)

    response = client.get(
        "/auth/deployment", params={"host": "a.web.dev", "next": "/"}, follow_redirects=False
    )

    assert response.status_code == 404
    assert "location" not in response.headers


def test_a_signed_out_visitor_is_sent_to_sign_in_and_back(
    client: Client, settings: Settings
) -> None:
    own_preview(client, settings)
    client.cookies.clear()

    response = client.get(
        "/auth/deployment", params={"host": HOST, "next": "/docs"}, follow_redirects=False
    )

    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert location.path == "/login"
    back = unquote(parse_qs(location.query)["next"][0])
    assert urlsplit(back).path == "/auth/deployment"
    assert parse_qs(urlsplit(back).query) == {"host": [HOST], "next": ["/docs"]}


def stored_hash(client: Client) -> str | None:
    async def read() -> str | None:
        row = await Project.select(Project.bypass_hash).where(Project.slug == "web").first()
        assert row is not None
        value: str | None = row["bypass_hash"]
        return value

    return client.run(read)


def test_the_bypass_secret_is_shown_once_and_stored_as_a_keyed_hash(client: Client) -> None:
    token = sign_up(client)
    create(client, token, name="web")

    first = client.post("/projects/web/protection-bypass", headers=bearer(token))
    stored_first = stored_hash(client)
    second = client.post("/projects/web/protection-bypass", headers=bearer(token))
    stored_second = stored_hash(client)

    assert first.status_code == 201
    secret = first.json()["secret"]
    assert len(secret) >= 32
    assert stored_first == tokens.bypass_hash(KEY, secret)
    assert secret not in (stored_first or "")
    # Replaced: the old secret opens nothing any more.
    assert second.json()["secret"] != secret
    assert not tokens.bypass_matches(KEY, stored_second, secret)
    assert tokens.bypass_matches(KEY, stored_second, second.json()["secret"])
    assert "secret" not in client.get("/projects/web", headers=bearer(token)).text.lower()

    removed = client.delete("/projects/web/protection-bypass", headers=bearer(token))
    assert removed.status_code == 204
    assert stored_hash(client) is None


def test_another_account_cannot_make_or_remove_the_bypass_secret(client: Client) -> None:
    token = sign_up(client)
    create(client, token, name="web")
    secret = client.post("/projects/web/protection-bypass", headers=bearer(token)).json()["secret"]
    other = sign_up(client, "eve@example.com")

    made = client.post("/projects/web/protection-bypass", headers=bearer(other))
    removed = client.delete("/projects/web/protection-bypass", headers=bearer(other))
    anonymous = client.post("/projects/web/protection-bypass")

    assert (made.status_code, removed.status_code, anonymous.status_code) == (404, 404, 401)
    assert tokens.bypass_matches(KEY, stored_hash(client), secret)
