"""The build settings: what the local builder inherits of the API's environment, and the
refusal of bad limits, attempts, sandbox paths and networks."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings
from app.settings_parts import SettingsError

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


@pytest.mark.parametrize(
    ("environ", "variable", "message"),
    [
        ({"SCALEMESH_BUILD_MEMORY_MB": "lots"}, "SCALEMESH_BUILD_MEMORY_MB", "whole number"),
        ({"SCALEMESH_BUILD_ATTEMPTS": "0"}, "SCALEMESH_BUILD_ATTEMPTS", "greater than 0"),
        ({"SCALEMESH_UNSAFE_LOCAL_BUILDS": "maybe"}, "SCALEMESH_UNSAFE_LOCAL_BUILDS", "1 or 0"),
        (
            {"SCALEMESH_BUILD_EGRESS_ALLOW_NETWORKS": "10.0.0.0/33"},
            "SCALEMESH_BUILD_EGRESS_ALLOW_NETWORKS",
            "networks like 10.0.0.0/8",
        ),
        (
            {"SCALEMESH_SANDBOX_READONLY_PATHS": "/opt/node:tools"},
            "SCALEMESH_SANDBOX_READONLY_PATHS",
            "absolute paths, not 'tools'",
        ),
    ],
)
def test_a_bad_build_setting_names_its_variable(
    tmp_path: Path, environ: dict[str, str], variable: str, message: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(
            {"SCALEMESH_DATA_DIR": str(tmp_path), "SCALEMESH_SECRET_KEY": KEY, **environ}
        )

    assert refused.value.variable == variable
    assert message in str(refused.value)
