"""The sign-in settings: GitHub's client credentials, its web URL, and who may sign up."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings
from app.settings_parts import SettingsError, Signup

KEY = "k" * 40


@pytest.mark.parametrize(
    ("given", "variable"),
    [
        ({"SCALEMESH_GITHUB_CLIENT_ID": "Iv1.abc"}, "SCALEMESH_GITHUB_CLIENT_SECRET"),
        ({"SCALEMESH_GITHUB_CLIENT_SECRET": "s"}, "SCALEMESH_GITHUB_CLIENT_ID"),
        ({"SCALEMESH_SIGNUP": "sometimes"}, "SCALEMESH_SIGNUP"),
        ({"SCALEMESH_GITHUB_WEB_URL": "github.com"}, "SCALEMESH_GITHUB_WEB_URL"),
    ],
)
def test_sign_in_settings_refuse_half_or_bad_values(
    tmp_path: Path, given: dict[str, str], variable: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {"SCALEMESH_DATA_DIR": str(tmp_path), "SCALEMESH_SECRET_KEY": KEY, **given}
        )
    assert raised.value.variable == variable


def test_sign_in_defaults_first_account_only_and_github_com(tmp_path: Path) -> None:
    settings = Settings.from_env({"SCALEMESH_DATA_DIR": str(tmp_path), "SCALEMESH_SECRET_KEY": KEY})
    assert (settings.signup, settings.oauth, settings.github_web_url) == (
        Signup.FIRST,
        None,
        "https://github.com",
    )
