"""API tokens for CI: made (shown once), listed, revoked; bearer only; `scalemesh login --token`."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.tables import ApiToken, Session
from tests.support import cli_client
from tests.support.api import TEST_SECRET_KEY, Client, bearer, sign_up
from tests.support.cli_client import Live, cli

live = cli_client.live
config = cli_client.config


def make_token(client: Client, session: str, **body: Any) -> dict[str, Any]:
    response = client.post("/tokens", json={"name": "GitLab CI", **body}, headers=bearer(session))
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def stored(client: Client) -> list[dict[str, Any]]:
    return client.run(
        lambda: ApiToken.select(
            ApiToken.id, ApiToken.token_hash, ApiToken.expires_at, ApiToken.last_used_at
        ).order_by(ApiToken.id)
    )


def test_a_token_is_shown_once_stored_hashed_and_works_as_a_bearer(client: Client) -> None:
    session = sign_up(client)

    made = make_token(client, session, expires_in_days=30)

    assert set(made) == {"id", "name", "token", "created_at", "expires_at"}
    assert made["name"] == "GitLab CI"
    expires = datetime.fromisoformat(made["expires_at"])
    assert timedelta(days=29, hours=23) < expires - datetime.now(UTC) <= timedelta(days=30)
    [row] = stored(client)
    key = TEST_SECRET_KEY.encode()
    assert row["token_hash"] == hmac.new(key, made["token"].encode(), hashlib.sha256).hexdigest()
    assert made["token"] not in json.dumps(row, default=str)
    me = client.get("/user", headers=bearer(made["token"]))
    assert me.status_code == 200
    assert me.json() == {"id": me.json()["id"], "email": "ada@example.com", "is_admin": True}
    assert client.get("/projects", headers=bearer(made["token"])).status_code == 200
    assert stored(client)[0]["last_used_at"] is not None


def test_the_list_never_shows_a_token(client: Client) -> None:
    session = sign_up(client)
    first = make_token(client, session)
    make_token(client, session, name="deploy bot", expires_in_days=7)

    listed = client.get("/tokens", headers=bearer(session))

    assert listed.status_code == 200
    assert [item["name"] for item in listed.json()] == ["GitLab CI", "deploy bot"]
    assert set(listed.json()[0]) == {"id", "name", "created_at", "expires_at", "last_used_at"}
    assert listed.json()[0]["expires_at"] is None
    assert first["token"] not in listed.text


def test_each_user_sees_only_their_own_tokens(client: Client) -> None:
    ada = sign_up(client)
    bob = sign_up(client, "bob@example.com")
    make_token(client, ada)

    assert client.get("/tokens", headers=bearer(bob)).json() == []


def test_deleting_a_token_revokes_it_at_once(client: Client) -> None:
    session = sign_up(client)
    made = make_token(client, session)

    deleted = client.delete(f"/tokens/{made['id']}", headers=bearer(session))
    again = client.delete(f"/tokens/{made['id']}", headers=bearer(session))

    assert deleted.status_code == 204
    assert stored(client) == []
    assert client.get("/user", headers=bearer(made["token"])).status_code == 401
    assert again.status_code == 404
    assert again.json()["error"] == "not_found"
    # An id no table could hold is refused as such, not sent to the database.
    assert client.delete(f"/tokens/{2**40}", headers=bearer(session)).status_code == 400


def test_another_users_token_cannot_be_deleted(client: Client) -> None:
    ada = sign_up(client)
    bob = sign_up(client, "bob@example.com")
    made = make_token(client, ada)

    response = client.delete(f"/tokens/{made['id']}", headers=bearer(bob))

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": f"You have no API token {made['id']}.",
    }
    assert len(stored(client)) == 1
    assert client.get("/user", headers=bearer(made["token"])).status_code == 200


def test_an_expired_token_does_not_work(client: Client) -> None:
    session = sign_up(client)
    made = make_token(client, session, expires_in_days=1)
    past = datetime.now(UTC) - timedelta(seconds=1)
    client.run(
        lambda: ApiToken.update({ApiToken.expires_at: past}).where(ApiToken.id == made["id"])
    )

    assert client.get("/user", headers=bearer(made["token"])).status_code == 401


def test_a_token_never_works_as_a_cookie(client: Client) -> None:
    session = sign_up(client)
    made = make_token(client, session)

    client.cookies.set("scalemesh_session", made["token"])
    response = client.get("/user")

    assert response.status_code == 401


def test_signing_out_with_a_token_ends_no_session(client: Client) -> None:
    session = sign_up(client)
    made = make_token(client, session)

    response = client.post("/user/logout", headers=bearer(made["token"]))

    assert response.status_code == 204
    assert client.run(lambda: Session.count()) == 1
    assert client.get("/user", headers=bearer(session)).status_code == 200


def test_use_is_recorded_at_most_once_a_minute(client: Client) -> None:
    session = sign_up(client)
    made = make_token(client, session)
    recent = datetime.now(UTC) - timedelta(seconds=30)
    stale = datetime.now(UTC) - timedelta(minutes=2)

    def set_used(moment: datetime) -> None:
        client.run(lambda: ApiToken.update({ApiToken.last_used_at: moment}, force=True))

    set_used(recent)
    client.get("/user", headers=bearer(made["token"]))
    after_recent = stored(client)[0]["last_used_at"]
    set_used(stale)
    client.get("/user", headers=bearer(made["token"]))
    after_stale = stored(client)[0]["last_used_at"]

    assert abs(after_recent - recent) < timedelta(milliseconds=1)
    assert after_stale > recent


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "  "}, "name"),
        ({"name": "ci", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "ci", "expires_in_days": 100000}, "expires_in_days"),
        ({"name": "x" * 101}, "name"),
    ],
)
def test_bad_token_requests_are_explained(
    client: Client, body: dict[str, Any], fragment: str
) -> None:
    session = sign_up(client)

    response = client.post("/tokens", json=body, headers=bearer(session))

    assert response.status_code == 400
    assert fragment in response.json()["detail"].lower()
    assert stored(client) == []


def test_tokens_need_a_signed_in_user(client: Client) -> None:
    assert client.post("/tokens", json={"name": "ci"}).status_code == 401
    assert client.get("/tokens").status_code == 401
    assert client.delete("/tokens/1").status_code == 401


# --- scalemesh login --token ------------------------------------------------------------------


def test_login_with_a_token_saves_it(
    live: Live, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = live.account()
    with live.http() as http:
        made = http.post("/tokens", json={"name": "ci"}, headers=bearer(account.token)).json()

    code, out, err = cli(capsys, "login", "--api", live.url, "--token", stdin=made["token"] + "\n")

    assert code == 0, err
    assert f"as {account.email}" in out
    assert json.loads(config.read_text()) == {"api": live.url, "token": made["token"]}
    code, out, err = cli(capsys, "projects")
    assert code == 0, err


def test_login_with_a_token_from_the_environment(
    live: Live, config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    account = live.account()
    with live.http() as http:
        made = http.post("/tokens", json={"name": "ci"}, headers=bearer(account.token)).json()
    monkeypatch.setenv("SCALEMESH_TOKEN", made["token"])

    code, _, err = cli(capsys, "login", "--api", live.url, "--token")

    assert code == 0, err
    assert json.loads(config.read_text())["token"] == made["token"]


def test_login_with_a_bad_token_saves_nothing(
    live: Live, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "login", "--api", live.url, "--token", stdin="smt_nope\n")
    empty, _, empty_err = cli(capsys, "login", "--api", live.url, "--token", stdin="\n")

    assert code == 1
    assert "does not accept this token" in err
    assert empty == 1
    assert "no API token" in empty_err
    assert not config.exists()
