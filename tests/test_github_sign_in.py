"""Sign in with GitHub, the web flow: the state, the callback, the session, where it goes next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.auth.routes import STATE_COOKIE
from app.tables import GitHubAccount, OAuthState, Session, User
from tests.support import github_sign_in
from tests.support.api import Client, bearer
from tests.support.github_sign_in import (
    CALLBACK,
    begin,
    callback,
    github_answers,
    session_of,
    sign_in,
)
from tests.support.github_users_fake import CLIENT_ID, CLIENT_SECRET, WEB_URL, FakeGitHubUsers

github_users = github_sign_in.github_users
oauth_settings = github_sign_in.oauth_settings
oauth_client = github_sign_in.oauth_client


def set_cookie(response: object, name: str) -> str:
    headers = getattr(response, "headers")  # noqa: B009 - httpx.Response, loosely typed here
    found = [line for line in headers.get_list("set-cookie") if line.startswith(f"{name}=")]
    assert len(found) == 1, found
    return str(found[0])


def sessions(client: Client) -> int:
    return int(client.run(lambda: Session.count()))


def test_signing_in_makes_an_account_with_a_working_session(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    octo = github_users.user("octo")
    begun = begin(oauth_client, "/projects/web")

    assert begun.authorize == f"{WEB_URL}/login/oauth/authorize"
    assert begun.query == {"client_id": CLIENT_ID, "redirect_uri": CALLBACK, "state": begun.state}
    cookie = set_cookie(begun.response, STATE_COOKIE).lower()
    for attribute in ("httponly", "samesite=lax", "path=/auth/github", "max-age=600"):
        assert attribute in cookie
    assert "secure" not in cookie  # the public URL is http://localhost:8000
    stored = oauth_client.run(lambda: OAuthState.select().output(as_list=False))
    assert len(stored) == 1
    assert stored[0]["state_hash"] != begun.state
    assert begun.state not in str(stored[0])
    assert stored[0]["next_path"] == "/projects/web"

    answer = callback(oauth_client, github_answers(github_users, begun), begun.state)

    assert answer.status_code == 302, answer.text
    assert answer.headers["location"] == "/projects/web"
    assert "max-age=0" in set_cookie(answer, STATE_COOKIE).lower()
    token = session_of(answer)
    assert oauth_client.get("/projects", headers=bearer(token)).status_code == 200
    exchanged = github_users.calls_to("POST", "/login/oauth/access_token")
    assert len(exchanged) == 1
    assert exchanged[0].body["redirect_uri"] == CALLBACK
    assert exchanged[0].body["client_secret"] == CLIENT_SECRET
    users = oauth_client.run(lambda: User.select(User.email, User.password_hash, User.is_admin))
    assert users == [
        {"email": f"{octo.id}+octo@users.noreply.github.com", "password_hash": "", "is_admin": True}
    ]
    linked = oauth_client.run(lambda: GitHubAccount.select(GitHubAccount.github_id).first())
    assert linked == {"github_id": octo.id}
    assert oauth_client.run(lambda: OAuthState.count()) == 0


def test_a_session_cookie_signs_in_the_dashboard(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    token = session_of(sign_in(oauth_client, github_users))

    oauth_client.cookies.clear()
    page = oauth_client.get(
        "/", headers={"Accept": "text/html", "Cookie": f"scalemesh_session={token}"}
    )

    assert page.status_code == 200
    assert "Sign out" in page.text


def test_a_state_not_matching_the_cookie_is_refused_with_a_page(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    begun = begin(oauth_client)
    query = github_answers(github_users, begun)

    answer = callback(oauth_client, query, "someone-elses-state")

    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert "Sign in with GitHub did not work" in answer.text
    assert "expired or was already used" in answer.text
    assert "max-age=0" in set_cookie(answer, STATE_COOKIE).lower()
    assert "scalemesh_session" not in answer.cookies
    assert sessions(oauth_client) == 0
    assert github_users.calls_to("POST", "/login/oauth/access_token") == []


def test_a_callback_without_the_state_cookie_is_refused(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    begun = begin(oauth_client)

    answer = callback(oauth_client, github_answers(github_users, begun), None)

    assert answer.status_code == 400
    assert sessions(oauth_client) == 0


def test_an_api_client_gets_the_refusal_as_json(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    oauth_client.cookies.clear()
    answer = oauth_client.get("/auth/github/callback?code=x&state=y", follow_redirects=False)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert sessions(oauth_client) == 0


def test_a_state_works_once(oauth_client: Client, github_users: FakeGitHubUsers) -> None:
    begun = begin(oauth_client)
    query = github_answers(github_users, begun)
    assert callback(oauth_client, query, begun.state).status_code == 302

    again = callback(oauth_client, query, begun.state)

    assert again.status_code == 400
    assert "expired or was already used" in again.text
    assert sessions(oauth_client) == 1


def test_an_expired_state_is_refused(oauth_client: Client, github_users: FakeGitHubUsers) -> None:
    begun = begin(oauth_client)
    query = github_answers(github_users, begun)
    oauth_client.run(
        lambda: OAuthState.update(
            {OAuthState.expires_at: datetime.now(UTC) - timedelta(seconds=1)}, force=True
        )
    )

    answer = callback(oauth_client, query, begun.state)

    assert answer.status_code == 400
    assert sessions(oauth_client) == 0
    assert github_users.calls_to("POST", "/login/oauth/access_token") == []


def test_a_code_github_refuses_is_a_clear_page_and_no_session(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    begun = begin(oauth_client)

    answer = callback(oauth_client, f"code=not-a-code&state={begun.state}", begun.state)

    assert answer.status_code == 400
    assert "GitHub did not accept the sign-in code" in answer.text
    assert sessions(oauth_client) == 0


def test_cancelling_on_github_is_a_clear_page(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    begun = begin(oauth_client)

    answer = callback(oauth_client, f"error=access_denied&state={begun.state}", begun.state)

    assert answer.status_code == 400
    assert "cancelled" in answer.text
    assert sessions(oauth_client) == 0


@pytest.mark.parametrize(
    ("asked", "goes_to"),
    [
        ("/projects/x", "/projects/x"),
        ("/projects/x?tab=env", "/projects/x?tab=env"),
        ("//evil.com", "/"),
        ("https://evil.com", "/"),
        ("/\\evil.com", "/"),
        ("evil.com", "/"),
    ],
)
def test_next_is_a_path_on_this_site_only(
    oauth_client: Client, github_users: FakeGitHubUsers, asked: str, goes_to: str
) -> None:
    answer = sign_in(oauth_client, github_users, asked)

    assert answer.status_code == 302
    assert answer.headers["location"] == goes_to


def test_without_github_configured_the_routes_answer_503(client: Client) -> None:
    for method, path in (
        ("GET", "/auth/github"),
        ("GET", "/auth/github/callback?code=x&state=y"),
        ("POST", "/auth/github/device"),
    ):
        answer = client.request(method, path, follow_redirects=False)
        assert answer.status_code == 503, (method, path)
        assert answer.json()["detail"].startswith("Sign in with GitHub is not set up")
    assert "github" not in client.get("/login", headers={"Accept": "text/html"}).text.lower()


def test_the_sign_in_page_links_to_github(oauth_client: Client) -> None:
    page = oauth_client.get("/login?next=/projects/web", headers={"Accept": "text/html"})

    assert page.status_code == 200
    assert 'href="/auth/github?next=/projects/web"' in page.text
    assert "Sign in with GitHub" in page.text


def test_github_failing_is_a_503_page_and_no_session(
    oauth_client: Client, github_users: FakeGitHubUsers, monkeypatch: pytest.MonkeyPatch
) -> None:
    begun = begin(oauth_client)
    query = github_answers(github_users, begun)
    monkeypatch.setattr(
        github_users, "_api", lambda *_: httpx.Response(502, text="<html>Bad gateway</html>")
    )

    answer = callback(oauth_client, query, begun.state)

    assert answer.status_code == 503
    assert "GitHub could not be reached" in answer.text
    assert sessions(oauth_client) == 0
    assert oauth_client.run(lambda: User.count()) == 0


def test_back_from_installing_the_app_starts_a_sign_in_with_a_state(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    answer = callback(
        oauth_client, "code=from-install&installation_id=7&setup_action=install", None
    )

    assert answer.status_code == 302
    assert answer.headers["location"] == "/auth/github?next=/"
    assert github_users.calls_to("POST", "/login/oauth/access_token") == []
    assert sessions(oauth_client) == 0
    assert sign_in(oauth_client, github_users).status_code == 302


def test_starting_a_sign_in_clears_expired_states(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    begin(oauth_client)
    oauth_client.run(
        lambda: OAuthState.update(
            {OAuthState.expires_at: datetime.now(UTC) - timedelta(seconds=1)}, force=True
        )
    )

    begun = begin(oauth_client)

    left = oauth_client.run(lambda: OAuthState.select(OAuthState.expires_at))
    assert len(left) == 1
    assert left[0]["expires_at"] > datetime.now(UTC)
    assert callback(oauth_client, github_answers(github_users, begun), begun.state).is_redirect
