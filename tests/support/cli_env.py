"""The environment a `scalemesh` command test runs in: the `env`, `db_env` and `migrated_env`
fixtures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

PG_SECRET_KEY = "k1:" + "ab" * 32
PG_PREVIEW_KEY = "p1:" + "cd" * 32


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The test's own environment: no SCALEMESH_* from outside, a fresh data directory."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SCALEMESH_")}
    environ["SCALEMESH_DATA_DIR"] = str(tmp_path / "data")
    return environ


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_env(request: pytest.FixtureRequest, env: dict[str, str]) -> dict[str, str]:
    """`env` on each engine: SQLite in the data directory, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        env["SCALEMESH_DATABASE_URL"] = request.getfixturevalue("postgres_databases").new()
        # On PostgreSQL the keys are required, as in production (README "Production").
        env["SCALEMESH_SECRET_KEY"] = PG_SECRET_KEY
        env["SCALEMESH_PREVIEW_KEY"] = PG_PREVIEW_KEY
    return env


@pytest.fixture
def migrated_env(env: dict[str, str], sqlite_template: Path) -> dict[str, str]:
    """`env` with its SQLite database migrated, as `scalemesh migrate` leaves it: a copy of the
    session's migrated file (the same `database.migrate`), for the tests of other commands; each
    `migrate` run would cost a process start and every migration (seconds on a busy machine)."""
    data = Path(env["SCALEMESH_DATA_DIR"])
    data.mkdir(parents=True)
    shutil.copyfile(sqlite_template, data / "scalemesh.sqlite3")
    return env
