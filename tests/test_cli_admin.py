"""`scalemesh migrate` and `scalemesh user create`, run as a user runs them: a fresh process."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import cli_env
from tests.support.processes import run_cli, running

PASSWORD = "correct horse battery"

# The shared fixtures, bound here: pytest finds a fixture by its name in the test's module.
env = cli_env.env
db_env = cli_env.db_env
migrated_env = cli_env.migrated_env


# migrate, user create -----------------------------------------------------------------------


def test_migrate_creates_the_database_then_has_nothing_to_do(env: dict[str, str]) -> None:
    database_file = Path(env["SCALEMESH_DATA_DIR"]) / "scalemesh.sqlite3"

    first = run_cli("migrate", env=env)
    second = run_cli("migrate", env=env)

    assert first.returncode == 0, first.stderr
    assert database_file.is_file()
    applied = first.stdout.split()
    assert applied
    assert "up to date" not in first.stdout
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "database is up to date"


def test_user_create_makes_an_account_once(db_env: dict[str, str]) -> None:
    assert run_cli("migrate", env=db_env).returncode == 0

    created = run_cli(
        "user", "create", "Ada@Example.com", "--password-stdin", env=db_env, stdin=PASSWORD + "\n"
    )
    again = run_cli(
        "user", "create", "ada@example.com", "--password-stdin", env=db_env, stdin=PASSWORD + "\n"
    )

    assert created.returncode == 0, created.stderr
    words = created.stdout.split()
    assert "ada@example.com" in words
    assert any(word.isdigit() for word in words), "prints the new user's id"
    assert again.returncode == 1
    assert again.stderr.startswith("scalemesh: ")
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize(
    ("email", "password", "problem"),
    [
        ("ada@example.com", "short", "at least 8 characters"),
        ("ada@example.com", "", "no password on standard input"),
        ("not-an-email", PASSWORD, "not an email address"),
    ],
)
def test_user_create_explains_bad_input(
    migrated_env: dict[str, str], email: str, password: str, problem: str
) -> None:
    result = run_cli("user", "create", email, "--password-stdin", env=migrated_env, stdin=password)

    assert result.returncode == 1
    assert result.stderr.startswith("scalemesh: ")
    assert problem in result.stderr
    assert "Traceback" not in result.stderr


def test_user_create_asks_for_migrations_first(env: dict[str, str]) -> None:
    result = run_cli(
        "user", "create", "ada@example.com", "--password-stdin", env=env, stdin=PASSWORD
    )

    assert result.returncode == 1
    assert "run `scalemesh migrate` first" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli("migrate", env=env).stdout.strip() != "database is up to date"


@pytest.mark.parametrize(
    ("typed", "exit_code", "said"),
    [
        (f"{PASSWORD}\n{PASSWORD}\n", 0, "ada@example.com"),
        (f"{PASSWORD}\nsomething else\n", 1, "the passwords do not match"),
        ("", 1, "no password given"),
    ],
    ids=["same twice", "different", "nothing"],
)
def test_user_create_prompts_twice_for_the_password(
    migrated_env: dict[str, str], typed: str, exit_code: int, said: str
) -> None:
    result = run_cli("user", "create", "ada@example.com", env=migrated_env, stdin=typed)

    assert result.returncode == exit_code, result.stderr
    assert said in result.stdout + result.stderr
    assert "Password: " in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_ctrl_c_at_the_password_prompt_exits_130_quietly(
    migrated_env: dict[str, str], tmp_path: Path
) -> None:
    args = ["user", "create", "ada@example.com"]

    with running(*args, env=migrated_env, logs=tmp_path / "logs", stdin=subprocess.PIPE) as create:
        create.wait_for_stderr("Password: ")
        exit_code = create.stop(signal.SIGINT)

    assert exit_code == 130
    assert "Traceback" not in create.stderr
    assert "KeyboardInterrupt" not in create.stderr


def test_an_unusable_data_directory_is_reported_without_a_traceback(
    env: dict[str, str], tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    env["SCALEMESH_DATA_DIR"] = str(not_a_directory)

    result = run_cli("migrate", env=env)

    assert result.returncode == 1
    assert result.stderr.startswith("scalemesh: ")
    assert str(not_a_directory) in result.stderr
    assert "Traceback" not in result.stderr
