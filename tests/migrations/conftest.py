"""An engine on an empty database of its own, on each engine kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import database
from app.database import AnyEngine
from app.settings import Settings
from tests.support.api import TEST_SECRET_KEY
from tests.support.services import PostgresDatabases


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AnyEngine:
    """An engine on an empty database of its own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scalemesh.sqlite3'}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
        url = databases.new()
    settings = Settings.from_env(
        {"SCALEMESH_DATABASE_URL": url, "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY}
    )
    return database.make_engine(settings.database)
