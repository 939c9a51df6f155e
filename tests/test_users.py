"""Sign-up, sign-in and sign-out through the HTTP API, on every database engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.errors import UserError
from app.settings import Settings
from app.tables import LoginFailure, Session, User
from app.users.http import SESSION_COOKIE
from app.users.service import MAX_FAILURES_PER_WINDOW, WRONG_CREDENTIALS, check_password
from tests.support.api import PASSWORD, Client, bearer, sign_up


def test_signup_stores_an_argon2id_hash_and_a_normalised_email(client: Client) -> None:
    response = client.post(
        "/user/signup", json={"email": " Ada@Example.COM ", "password": PASSWORD}
    )

    assert response.status_code == 201
    assert response.json() == {
        "id": response.json()["id"],
        "email": "ada@example.com",
        "is_admin": True,  # the first account
    }
    rows = client.run(lambda: User.select(User.email, User.password_hash))
    assert len(rows) == 1
    assert rows[0]["email"] == "ada@example.com"
    assert rows[0]["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in rows[0]["password_hash"]


def test_signup_refuses_a_taken_email_whatever_its_case(client: Client) -> None:
    client.post("/user/signup", json={"email": "ada@example.com", "password": PASSWORD})

    response = client.post("/user/signup", json={"email": "ADA@example.com", "password": PASSWORD})

    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert "already exists" in response.json()["detail"]
    assert client.run(lambda: User.count()) == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "not an email address"),
        ({"email": "ada@example.com", "password": "short"}, "at least 8 characters"),
        ({"email": "ada@example.com", "password": "x" * 1025}, "length <= 1024"),
        ({"email": "ada@example.com"}, "missing required field `password`"),
        ({"email": 5, "password": PASSWORD}, "email: Expected `str`, got `int`"),
        ({"email": "a@b.co", "password": PASSWORD, "admin": True}, "unknown field `admin`"),
        ([], "Expected `object`, got `array`"),
    ],
)
def test_signup_explains_bad_input_and_stores_nothing(
    client: Client, body: Any, fragment: str
) -> None:
    response = client.post("/user/signup", json=body)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert fragment in response.json()["detail"]
    assert client.run(lambda: User.count()) == 0


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"{not json", "not valid JSON"), (b"", "body is empty")],
)
def test_signup_explains_a_body_that_is_not_json(
    client: Client, content: bytes, fragment: str
) -> None:
    response = client.post(
        "/user/signup", content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert fragment in response.json()["detail"]


def test_login_sets_a_session_cookie_and_returns_the_same_token(client: Client) -> None:
    client.post("/user/signup", json={"email": "ada@example.com", "password": PASSWORD})

    response = client.post("/user/login", json={"email": "ADA@example.com", "password": PASSWORD})

    assert response.status_code == 200
    token = response.json()["token"]
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}={token};")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie
    # Only a keyed hash of the token is stored.
    stored = client.run(lambda: Session.select(Session.token_hash))
    assert len(stored) == 1
    assert token not in stored[0]["token_hash"]


def test_cookie_is_secure_when_the_public_url_is_https(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    from app.asgi import create_app

    settings = make_settings(
        SCALEMESH_DATABASE_URL=database_url, SCALEMESH_PUBLIC_URL="https://deploy.example.com"
    )
    with Client(create_app(settings)) as client:
        client.post("/user/signup", json={"email": "ada@example.com", "password": PASSWORD})
        response = client.post(
            "/user/login", json={"email": "ada@example.com", "password": PASSWORD}
        )

    assert "Secure" in response.headers["set-cookie"]


def test_session_works_as_cookie_and_as_bearer_token(client: Client) -> None:
    client.post("/user/signup", json={"email": "ada@example.com", "password": PASSWORD})
    token = client.post(
        "/user/login", json={"email": "ada@example.com", "password": PASSWORD}
    ).json()["token"]

    assert client.get("/projects").status_code == 200  # the cookie the login set
    client.cookies.clear()
    assert client.get("/projects").status_code == 401
    assert client.get("/projects", headers=bearer(token)).status_code == 200
    client.cookies.set(SESSION_COOKIE, token)
    assert client.get("/projects").status_code == 200


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("nobody@example.com", PASSWORD),
        ("ada@example.com", "wrong password"),
        ("not an email", PASSWORD),
    ],
)
def test_login_gives_one_message_for_every_kind_of_bad_credentials(
    client: Client, email: str, password: str
) -> None:
    client.post("/user/signup", json={"email": "ada@example.com", "password": PASSWORD})

    response = client.post("/user/login", json={"email": email, "password": password})

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "detail": WRONG_CREDENTIALS}
    assert "set-cookie" not in response.headers
    assert client.run(lambda: Session.count()) == 0


def test_repeated_failures_for_one_email_are_refused_for_a_while(client: Client) -> None:
    client.post("/user/signup", json={"email": "ada@example.com", "password": PASSWORD})
    wrong = {"email": "ada@example.com", "password": "wrong password"}
    for _ in range(MAX_FAILURES_PER_WINDOW):
        assert client.post("/user/login", json=wrong).status_code == 401

    # Even the right password is refused now, so guessing gains nothing.
    response = client.post("/user/login", json={"email": "ada@example.com", "password": PASSWORD})

    assert response.status_code == 429
    assert response.json()["error"] == "too_many_requests"
    assert 1 <= int(response.headers["retry-after"]) <= 61
    assert "wait" in response.json()["detail"]
    # Another account is not affected.
    client.post("/user/signup", json={"email": "bob@example.com", "password": PASSWORD})
    other = client.post("/user/login", json={"email": "bob@example.com", "password": PASSWORD})
    assert other.status_code == 200


def test_old_failures_stop_counting_and_success_clears_them(client: Client) -> None:
    from datetime import UTC, datetime, timedelta

    client.post("/user/signup", json={"email": "ada@example.com", "password": PASSWORD})
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    client.run(
        lambda: LoginFailure.insert(
            *[
                LoginFailure(email="ada@example.com", failed_at=long_ago)
                for _ in range(MAX_FAILURES_PER_WINDOW)
            ]
        )
    )
    client.post("/user/login", json={"email": "ada@example.com", "password": "wrong password"})

    response = client.post("/user/login", json={"email": "ada@example.com", "password": PASSWORD})

    assert response.status_code == 200
    assert client.run(lambda: LoginFailure.count()) == 0


def test_logout_revokes_the_session_at_once(client: Client) -> None:
    token = sign_up(client)
    assert client.get("/projects", headers=bearer(token)).status_code == 200

    response = client.post("/user/logout", headers=bearer(token))

    assert response.status_code == 204
    assert f"{SESSION_COOKIE}=" in response.headers["set-cookie"]
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert client.get("/projects", headers=bearer(token)).status_code == 401
    client.cookies.set(SESSION_COOKIE, token)
    assert client.get("/projects").status_code == 401
    assert client.run(lambda: Session.count()) == 0


def test_logout_leaves_other_sessions_alone(client: Client) -> None:
    first = sign_up(client)
    second = client.post(
        "/user/login", json={"email": "ada@example.com", "password": PASSWORD}
    ).json()["token"]

    client.post("/user/logout", headers=bearer(first))

    assert client.get("/projects", headers=bearer(second)).status_code == 200


def test_logout_needs_a_session(client: Client) -> None:
    response = client.post("/user/logout")

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    "authorization", ["Bearer not-a-token", "Basic YWRhOnB3", "Bearer ", "Bearer"]
)
def test_a_bad_authorization_header_is_a_401(client: Client, authorization: str) -> None:
    response = client.get("/projects", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert "Sign in first" in response.json()["detail"]


def test_an_expired_session_does_not_work(client: Client) -> None:
    from datetime import UTC, datetime, timedelta

    token = sign_up(client)
    client.run(
        lambda: Session.update(
            {Session.expires_at: datetime.now(UTC) - timedelta(seconds=1)}
        ).where(Session.id > 0)
    )

    assert client.get("/projects", headers=bearer(token)).status_code == 401


@pytest.mark.parametrize(
    ("password", "fragment"), [("short", "at least 8"), ("x" * 1025, "at most 1024")]
)
def test_password_rules_hold_outside_http_too(password: str, fragment: str) -> None:
    # `scalemesh user create` calls these without the HTTP layer's checks.
    with pytest.raises(UserError, match=fragment):
        check_password(password)
