"""Sign in with GitHub: which account it signs in to, the token it keeps, and the device flow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from app.auth.user_tokens import UserTokens
from app.settings import Settings
from app.tables import GitHubAccount, Session, User
from app.users import passwords
from app.users.service import UserService
from tests.support import github_sign_in
from tests.support.api import PASSWORD, Client, bearer, sign_up
from tests.support.github_sign_in import session_of, sign_in
from tests.support.github_users_fake import API_URL, FakeGitHubUsers

github_users = github_sign_in.github_users
oauth_settings = github_sign_in.oauth_settings
oauth_client = github_sign_in.oauth_client


def whoami(client: Client, token: str) -> int:
    """The account a session token belongs to."""
    found = client.run(lambda: user_service(client).user_for_token(token))
    assert found is not None
    return found.id


def user_service(client: Client) -> UserService:
    settings: Settings = client.app.state.services.dashboard.settings
    return UserService(settings)


def user_tokens(client: Client) -> UserTokens:
    tokens: UserTokens = client.app.state.services.user_tokens
    return tokens


def accounts(client: Client) -> list[dict[str, object]]:
    return client.run(
        lambda: GitHubAccount.select(
            GitHubAccount.user, GitHubAccount.github_id, GitHubAccount.login
        )
    )


def test_the_same_github_user_gets_the_same_account_even_renamed(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    octo = github_users.user("octo")
    first = whoami(oauth_client, session_of(sign_in(oauth_client, github_users)))
    again = whoami(oauth_client, session_of(sign_in(oauth_client, github_users)))
    octo.login = github_users.browser_user = "octo-renamed"

    renamed = whoami(oauth_client, session_of(sign_in(oauth_client, github_users)))

    assert first == again == renamed
    assert oauth_client.run(lambda: User.count()) == 1
    assert accounts(oauth_client) == [
        {"user": first, "github_id": octo.id, "login": "octo-renamed"}
    ]
    emails = oauth_client.run(lambda: User.select(User.email).output(as_list=True))
    assert emails == [f"{octo.id}+octo-renamed@users.noreply.github.com"]


def test_a_rename_to_an_address_another_account_has_keeps_the_old_address(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    octo = github_users.user("octo")
    taken = f"{octo.id}+octo-renamed@users.noreply.github.com"
    owner = whoami(oauth_client, sign_up(oauth_client, taken))
    first = whoami(oauth_client, session_of(sign_in(oauth_client, github_users)))
    octo.login = github_users.browser_user = "octo-renamed"

    renamed = whoami(oauth_client, session_of(sign_in(oauth_client, github_users)))

    assert renamed == first != owner
    emails = oauth_client.run(
        lambda: User.select(User.id, User.email).order_by(User.id).output(as_list=False)
    )
    assert emails == [
        {"id": owner, "email": taken},
        {"id": first, "email": f"{octo.id}+octo@users.noreply.github.com"},
    ]
    assert accounts(oauth_client) == [
        {"user": first, "github_id": octo.id, "login": "octo-renamed"}
    ]


def test_another_github_user_gets_another_account_not_an_admin(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    first = whoami(oauth_client, session_of(sign_in(oauth_client, github_users)))
    github_users.add_user("hubot")
    github_users.browser_user = "hubot"

    second = whoami(oauth_client, session_of(sign_in(oauth_client, github_users)))

    assert second != first
    admins = oauth_client.run(
        lambda: User.select(User.id).where(User.is_admin == True).output(as_list=True)  # noqa: E712
    )
    assert admins == [first]


def test_a_password_account_with_the_same_email_is_not_taken_over(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    octo = github_users.user("octo")
    email = f"{octo.id}+octo@users.noreply.github.com"
    password_token = sign_up(oauth_client, email)
    owner = whoami(oauth_client, password_token)

    signed_in = whoami(oauth_client, session_of(sign_in(oauth_client, github_users)))

    assert signed_in != owner
    assert [row["user"] for row in accounts(oauth_client)] == [signed_in]
    hashes = oauth_client.run(
        lambda: User.select(User.id, User.password_hash).order_by(User.id).output(as_list=False)
    )
    assert hashes[0]["id"] == owner
    assert hashes[0]["password_hash"]
    assert hashes[1]["password_hash"] == ""
    oauth_client.cookies.clear()
    login = {"email": email, "password": PASSWORD}
    assert oauth_client.post("/user/login", json=login).status_code == 200


def test_no_password_signs_in_to_an_account_made_by_github(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    octo = github_users.user("octo")
    sign_in(oauth_client, github_users)
    oauth_client.cookies.clear()
    email = f"{octo.id}+octo@users.noreply.github.com"

    for password in ("", " ", PASSWORD, passwords._DUMMY_PASSWORD):
        answer = oauth_client.post("/user/login", json={"email": email, "password": password})
        assert answer.status_code == 401, password


def test_the_token_is_stored_sealed_and_refreshed_once_expired(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    user_id = whoami(oauth_client, session_of(sign_in(oauth_client, github_users)))
    issued = list(github_users.tokens)
    assert len(issued) == 1
    row = oauth_client.run(lambda: GitHubAccount.select().first())
    assert row is not None
    for column in ("token_sealed", "refresh_sealed"):
        assert issued[0].encode() not in bytes(row[column])
        assert b"ghr_" not in bytes(row[column])
    assert oauth_client.run(lambda: user_tokens(oauth_client).token_for(user_id)) == issued[0]

    github_users.expire_tokens()
    oauth_client.run(
        lambda: GitHubAccount.update(
            {GitHubAccount.token_expires_at: datetime.now(UTC) - timedelta(seconds=1)}, force=True
        )
    )
    fresh = oauth_client.run(lambda: user_tokens(oauth_client).token_for(user_id))

    assert fresh is not None
    assert fresh != issued[0]
    assert len(github_users.calls_to("POST", "/login/oauth/access_token")) == 2
    me = github_users.handle(httpx.Request("GET", f"{API_URL}/user", headers=bearer(fresh)))
    assert me.json()["login"] == "octo"


def test_the_device_flow_over_the_api(oauth_client: Client, github_users: FakeGitHubUsers) -> None:
    started = oauth_client.post("/auth/github/device")
    assert started.status_code == 200, started.text
    device = started.json()
    assert set(device) == {"user_code", "verification_uri", "device_code", "interval", "expires_in"}
    assert device["verification_uri"] == "https://github.com/login/device"
    body = {"device_code": device["device_code"]}

    pending = oauth_client.post("/auth/github/device/token", json=body)

    assert pending.status_code == 409
    assert pending.json()["error"] == "conflict"
    assert pending.headers["retry-after"] == str(github_users.device_interval)
    assert oauth_client.run(lambda: Session.count()) == 0

    github_users.authorize_device(device["user_code"], "octo")
    done = oauth_client.post("/auth/github/device/token", json=body)

    assert done.status_code == 200, done.text
    assert set(done.json()) == {"token", "expires_at"}
    oauth_client.cookies.clear()
    assert oauth_client.get("/projects", headers=bearer(done.json()["token"])).status_code == 200
    assert accounts(oauth_client)[0]["login"] == "octo"


def test_a_denied_device_code_is_refused(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    device = oauth_client.post("/auth/github/device").json()
    github_users.authorize_device(device["user_code"], "octo", deny=True)

    refused = oauth_client.post(
        "/auth/github/device/token", json={"device_code": device["device_code"]}
    )

    assert refused.status_code == 400
    assert "denied" in refused.json()["detail"]
    assert oauth_client.run(lambda: Session.count()) == 0
