"""The environment a `scalemesh` command test runs in: the `env` and `db_env` fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
    return env
