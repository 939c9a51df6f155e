"""`scalemesh login --github`: the device flow through a live API, GitHub being the fake."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.asgi import create_app
from app.github.oauth_client import GitHubUsersClient
from app.settings import Settings
from tests.support import cli_client, github_sign_in
from tests.support.api import OfflineResolver, bearer
from tests.support.cli_client import cli
from tests.support.github_users_fake import API_URL, WEB_URL, FakeGitHubUsers
from tests.support.servers import uvicorn_in_thread
from tests.support.waiting import wait_until

config = cli_client.config
github_users = github_sign_in.github_users
oauth_settings = github_sign_in.oauth_settings


@pytest.fixture
def api(oauth_settings: Settings, github_users: FakeGitHubUsers) -> Iterator[str]:
    """A live API with "Sign in with GitHub" configured; its URL."""
    assert oauth_settings.oauth is not None
    users = GitHubUsersClient(
        oauth_settings.oauth, web_url=WEB_URL, api_url=API_URL, transport=github_users.transport
    )
    app = create_app(
        oauth_settings, ref_resolver=OfflineResolver(), reconcile=False, github_users=users
    )
    with uvicorn_in_thread(app) as serving:
        yield serving.url


def approve_when_asked(
    fake: FakeGitHubUsers, login: str, *, deny: bool = False
) -> threading.Thread:
    """The user, on github.com: once a code was handed out and polled for, type it in."""

    def approve() -> None:
        wait_until(
            lambda: fake.devices and fake.calls_to("POST", "/login/oauth/access_token"),
            what="the CLI polling for its device code",
        )
        (grant,) = fake.devices.values()
        fake.authorize_device(grant.user_code, login, deny=deny)

    thread = threading.Thread(target=approve, daemon=True)
    thread.start()
    return thread


def test_login_with_github_saves_a_working_session(
    api: str, config: Path, github_users: FakeGitHubUsers, capsys: pytest.CaptureFixture[str]
) -> None:
    approving = approve_when_asked(github_users, "octo")

    code, out, err = cli(capsys, "login", "--api", api, "--github")

    approving.join()
    assert code == 0, err
    (grant,) = github_users.devices.values()
    assert f"Open {WEB_URL}/login/device and enter {grant.user_code}" in err
    assert f"Logged in to {api} with GitHub" in out
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    saved = json.loads(config.read_text())
    assert saved["api"] == api
    with httpx.Client(base_url=api, trust_env=False) as http:
        assert http.get("/projects", headers=bearer(saved["token"])).status_code == 200
    polls = github_users.calls_to("POST", "/login/oauth/access_token")
    assert len(polls) >= 2  # pending at least once, then the token
    assert {call.body["device_code"] for call in polls} == set(github_users.devices)


def test_a_denied_github_login_says_so_and_saves_nothing(
    api: str, config: Path, github_users: FakeGitHubUsers, capsys: pytest.CaptureFixture[str]
) -> None:
    approving = approve_when_asked(github_users, "octo", deny=True)

    code, _, err = cli(capsys, "login", "--api", api, "--github")

    approving.join()
    assert code == 1
    assert "access to your GitHub account was denied" in err
    assert not config.exists()


def test_ctrl_c_while_waiting_exits_130_quietly(
    api: str,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("app.client.github_login.time.sleep", interrupted)

    code, _, err = cli(capsys, "login", "--api", api, "--github")

    assert code == 130
    assert "Traceback" not in err
    assert err.strip().startswith("Open ")
    assert not config.exists()


def test_github_login_refuses_a_password_too(
    api: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "login", "--api", api, "--github", "--email", "a@example.com")

    assert code == 1
    assert "--github" in err
