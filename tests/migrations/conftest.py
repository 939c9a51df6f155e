"""An engine on an empty database of its own, on each engine kind, and the snapshots of the
fixture's database that this test process keeps for such engines."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from app import database
from app.database import AnyEngine
from app.settings import Settings
from tests.support.api import TEST_SECRET_KEY
from tests.support.migration_snapshots import PostgresSnapshots, SqliteSnapshots, attach
from tests.support.services import PostgresDatabases


@pytest.fixture(scope="session")
def sqlite_snapshots(tmp_path_factory: pytest.TempPathFactory) -> SqliteSnapshots:
    return SqliteSnapshots(tmp_path_factory.mktemp("migration-snapshots"))


@pytest.fixture(scope="session")
def postgres_snapshots(postgres_databases: PostgresDatabases) -> PostgresSnapshots:
    return PostgresSnapshots(postgres_databases)


def _empty(request: pytest.FixtureRequest, kind: str, path: Path) -> AnyEngine:
    """An engine of `kind` on an empty database (SQLite: at `path`), its snapshots attached."""
    snapshots: SqliteSnapshots | PostgresSnapshots
    if kind == "sqlite":
        url = f"sqlite:///{path}"
        snapshots = request.getfixturevalue("sqlite_snapshots")
    else:
        snapshots = request.getfixturevalue("postgres_snapshots")
        url = snapshots.empty()
        databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
        request.addfinalizer(lambda: databases.discard(url))
    settings = Settings.from_env(
        {"SCALEMESH_DATABASE_URL": url, "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY}
    )
    engine = database.make_engine(settings.database)
    attach(engine, snapshots)
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AnyEngine:
    """An engine on an empty database of its own."""
    return _empty(request, request.param, tmp_path / "scalemesh.sqlite3")


@pytest.fixture
def more_engines(
    request: pytest.FixtureRequest, engine: AnyEngine, tmp_path: Path
) -> Callable[[], AnyEngine]:
    """Makes more engines of `engine`'s kind, each on an empty database of its own."""
    made = itertools.count(1)
    return lambda: _empty(request, engine.engine_type, tmp_path / f"more-{next(made)}.sqlite3")
