"""`scalemesh dev` and `scalemesh serve api` where local builds can have no sandbox: one line
saying why and what to do, before anything is served or migrated, rather than the app's failed
startup with a traceback. An API that needs no local sandbox (ECS builds, or
SCALEMESH_UNSAFE_LOCAL_BUILDS=1) goes on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.cli import main

REASON = "no user namespaces"
ECS = {
    "SCALEMESH_RUNNER": "ecs",
    "SCALEMESH_ECS_CLUSTER": "scalemesh-builds",
    "SCALEMESH_ECS_TASK_DEFINITION": "scalemesh-builder",
    "SCALEMESH_ECS_SUBNETS": "subnet-1",
    "SCALEMESH_ECS_SECURITY_GROUPS": "sg-1",
    "SCALEMESH_ECS_UPLOAD_ROLE_ARN": "arn:aws:iam::123456789012:role/scalemesh-build-upload",
}


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data directory, no SCALEMESH_* from outside, and no sandbox to be had here."""
    for name in os.environ:
        if name.startswith("SCALEMESH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SCALEMESH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("builder.sandbox.probe", lambda *args, **kwargs: REASON)
    return tmp_path / "data"


@pytest.mark.parametrize(
    "command",
    [["dev", "--api-port", "0", "--proxy-port", "0"], ["serve", "api", "--port", "0"]],
    ids=["dev", "serve api"],
)
def test_the_api_without_a_sandbox_stops_in_one_line_before_starting(
    data_dir: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(command) == 1

    err = capsys.readouterr().err
    assert err.startswith("scalemesh: local builds need a sandbox, and none can be set up here")
    assert REASON in err
    assert "SCALEMESH_UNSAFE_LOCAL_BUILDS=1" in err
    assert err.count("\n") == 1, err
    assert not (data_dir / "scalemesh.sqlite3").exists(), "stopped before migrating anything"


@pytest.mark.parametrize(
    "settings",
    [ECS, {"SCALEMESH_UNSAFE_LOCAL_BUILDS": "1"}],
    ids=["ecs builds", "unsafe local builds"],
)
def test_an_api_that_needs_no_local_sandbox_goes_on(
    data_dir: Path,
    settings: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)

    # Past the sandbox, the next thing `serve api` checks: a database never migrated.
    assert main(["serve", "api", "--port", "0"]) == 1

    err = capsys.readouterr().err
    assert "run `scalemesh migrate` first" in err
    assert "sandbox" not in err
