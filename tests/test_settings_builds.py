"""What the local builder process inherits of the API's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings

KEY = "k" * 40


@pytest.mark.parametrize(
    ("storage", "aws"), [("", {}), ("s3://bucket", {"AWS_REGION": "eu-west-1"})]
)
def test_the_local_builder_inherits_path_locale_and_only_for_s3_aws(
    tmp_path: Path, storage: str, aws: dict[str, str]
) -> None:
    settings = Settings.from_env(
        {
            "SCALEMESH_DATA_DIR": str(tmp_path),
            "SCALEMESH_STORAGE_URL": storage,
            "PATH": "/usr/bin",
            "LANG": "C.UTF-8",
            "HOME": "/root",
            "AWS_REGION": "eu-west-1",
            "AWS_PROFILE": "dev",
            "GITHUB_TOKEN": "ghp_x",
            "SCALEMESH_SECRET_KEY": KEY,
        }
    )

    assert settings.runner_env == {"PATH": "/usr/bin", "LANG": "C.UTF-8", **aws}
