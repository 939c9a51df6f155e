"""The `scalemesh` command, run as a user runs it: a fresh process with its own data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.secret_key import SECRET_KEY_FILE
from tests.support import cli_env
from tests.support.processes import run_cli

# The shared fixtures, bound here: pytest finds a fixture by its name in the test's module.
env = cli_env.env


# --help -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["dev"],
        ["serve"],
        ["serve", "api"],
        ["serve", "proxy"],
        ["migrate"],
        ["user"],
        ["user", "create"],
        ["settings"],
    ],
    ids=lambda command: " ".join(command) or "scalemesh",
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])

    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {' '.join(['scalemesh', *command])} ")
    description = out.split("\n\n")[1]
    assert description.strip(), "each command says in one line what it does"


def test_runs_as_a_module_and_says_what_it_offers(env: dict[str, str]) -> None:
    result = run_cli("--help", env=env)

    assert result.returncode == 0
    for command in ("dev", "serve", "migrate", "user", "settings"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["serve", "api", "--port", "70000"], "is not a port"),
        (["serve", "proxy", "--workers", "0"], "must be 1 or more"),
        (["dev", "--api-port", "http"], "is not a whole number"),
        (["serve"], "required"),
    ],
)
def test_bad_usage_exits_2_naming_the_problem(
    args: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)

    assert exited.value.code == 2
    assert problem in capsys.readouterr().err


# settings and configuration errors ----------------------------------------------------------


def test_settings_prints_every_setting_with_secrets_masked(env: dict[str, str]) -> None:
    env["SCALEMESH_DATABASE_URL"] = "postgresql://scalemesh:hunter2-db-password@db:5432/scalemesh"
    env["SCALEMESH_SECRET_KEY"] = key = "k1:" + "5e" * 32
    env["SCALEMESH_PREVIEW_KEY"] = preview = "p1:" + "7f" * 32

    result = run_cli("settings", env=env)

    assert result.returncode == 0, result.stderr
    assert key[3:] not in result.stdout + result.stderr
    assert preview[3:] not in result.stdout + result.stderr
    assert "hunter2-db-password" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "SCALEMESH_SECRET_KEY=***" in lines
    assert "SCALEMESH_PREVIEW_KEY=***" in lines
    assert "SCALEMESH_DATABASE_URL=***" in lines
    assert f"SCALEMESH_DATA_DIR={env['SCALEMESH_DATA_DIR']}" in lines
    assert "SCALEMESH_BUILD_TIMEOUT=900" in lines


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SCALEMESH_RUNNER", "kubernetes"), ("SCALEMESH_BUILD_TIMEOUT", "abc")],
)
@pytest.mark.parametrize(
    "command", [["settings"], ["migrate"], ["dev"], ["serve", "proxy"]], ids=" ".join
)
def test_bad_configuration_exits_2_naming_the_variable(
    env: dict[str, str], command: list[str], variable: str, value: str
) -> None:
    env[variable] = value

    result = run_cli(*command, env=env)

    assert result.returncode == 2
    assert result.stderr.startswith("scalemesh: configuration error: ")
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


POSTGRES_URL = "postgresql://scalemesh:pw@127.0.0.1:9/scalemesh"
KEY = "k1:" + "ab" * 32


@pytest.mark.parametrize(
    ("command", "given", "missing"),
    [
        (["serve", "api"], {}, "SCALEMESH_SECRET_KEY"),
        (["serve", "api"], {"SCALEMESH_SECRET_KEY": ""}, "SCALEMESH_SECRET_KEY"),
        (
            ["serve", "api", "--workers", "2"],
            {"SCALEMESH_PREVIEW_KEY": KEY},
            "SCALEMESH_SECRET_KEY",
        ),
        (["serve", "api"], {"SCALEMESH_SECRET_KEY": KEY}, "SCALEMESH_PREVIEW_KEY"),
        (["serve", "proxy"], {"SCALEMESH_SECRET_KEY": KEY}, "SCALEMESH_PREVIEW_KEY"),
        (["serve", "proxy"], {"SCALEMESH_PREVIEW_KEY": " "}, "SCALEMESH_PREVIEW_KEY"),
        (["dev"], {"SCALEMESH_PREVIEW_KEY": KEY}, "SCALEMESH_SECRET_KEY"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else str(value),
)
def test_serving_on_postgres_refuses_to_start_without_its_keys(
    env: dict[str, str], command: list[str], given: dict[str, str], missing: str
) -> None:
    """Every replica must share the keys: none is generated, nothing half-works."""
    env["SCALEMESH_DATABASE_URL"] = POSTGRES_URL
    env.update(given)

    result = run_cli(*command, "--port" if command[0] == "serve" else "--api-port", "0", env=env)

    assert result.returncode == 2
    assert result.stderr.startswith(f"scalemesh: configuration error: {missing}: must be set")
    assert "PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (Path(env["SCALEMESH_DATA_DIR"]) / SECRET_KEY_FILE).exists()
