"""What an account or a build can get of sign-in's secrets through this feature: nothing.

A user's GitHub token (and its refresh token) is what access checks ask GitHub with; the App's
client secret exchanges codes. Neither appears in any answer the API or the dashboard gives,
even to the account the token belongs to, and a build inherits none of the sign-in settings.
"""

from __future__ import annotations

from pathlib import Path

from app.settings import Settings
from tests.support import github_sign_in
from tests.support.api import Client, bearer
from tests.support.github_sign_in import session_of, sign_in
from tests.support.github_users_fake import CLIENT_SECRET, FakeGitHubUsers
from tests.support.pages import HTML

github_users = github_sign_in.github_users
oauth_settings = github_sign_in.oauth_settings
oauth_client = github_sign_in.oauth_client


def test_no_answer_shows_a_user_their_github_token_or_the_client_secret(
    oauth_client: Client, github_users: FakeGitHubUsers
) -> None:
    session = session_of(sign_in(oauth_client, github_users))
    token = oauth_client.post("/tokens", json={"name": "ci"}, headers=bearer(session))
    assert token.status_code == 201

    answers = [
        oauth_client.get(path, headers={**headers, **bearer(session)})
        for path, headers in (
            ("/user", {}),
            ("/projects", {}),
            ("/tokens", {}),
            ("/", HTML),
            ("/login", HTML),
            ("/schema", {}),
        )
    ]

    secrets = [*github_users.tokens, *github_users.refresh_tokens, CLIENT_SECRET]
    assert len(github_users.tokens) >= 1
    for answer in answers:
        assert answer.status_code == 200, answer.request.url
        assert not [secret for secret in secrets if secret in answer.text], answer.request.url


def test_a_build_inherits_none_of_the_sign_in_settings(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "SCALEMESH_DATA_DIR": str(tmp_path),
            "SCALEMESH_SECRET_KEY": "k" * 40,
            "SCALEMESH_GITHUB_CLIENT_ID": "Iv1.abc",
            "SCALEMESH_GITHUB_CLIENT_SECRET": CLIENT_SECRET,
            "SCALEMESH_GITHUB_WEB_URL": "https://github.com",
            "SCALEMESH_SIGNUP": "open",
            "PATH": "/usr/bin:/bin",
        }
    )

    assert settings.runner_env == {"PATH": "/usr/bin:/bin"}
    assert CLIENT_SECRET not in repr(settings)
