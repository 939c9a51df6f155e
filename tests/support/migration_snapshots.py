"""Copies of the migration fixture's database at each migration a test process has reached, so
each xdist worker builds the fixture and runs each migration once, not once per test.

`reach` restores the snapshot furthest along the way a test wants and migrates forward only from
there, keeping each state it passes. A snapshot is exactly what `build` and the migrations left:
a copy of the SQLite file, or a PostgreSQL database made from it as a template. Either holds the
same rows, schema and applied-migration list the test would have built (only Piccolo's `ran_on`
times are older).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from piccolo.apps.migrations.commands.forwards import run_forwards
from piccolo.engine.postgres import PostgresEngine

from app import database
from app.database import AnyEngine
from app.sqlite_engine import PooledSQLiteEngine
from tests.support.migration_fixture import build
from tests.support.services import PostgresDatabases


class Snapshots(Protocol):
    """Where one engine kind's snapshots are, by the last migration applied to them."""

    def __contains__(self, migration_id: object) -> bool: ...

    async def keep(self, engine: AnyEngine, migration_id: str) -> None:
        """Copy the engine's database, now at `migration_id`."""

    async def restore(self, engine: AnyEngine, migration_id: str) -> None:
        """Replace the engine's database with the copy kept at `migration_id`."""


class SqliteSnapshots:
    """Copies of the database file, in a directory of the test session's."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._files: dict[str, Path] = {}

    def __contains__(self, migration_id: object) -> bool:
        return migration_id in self._files

    async def keep(self, engine: AnyEngine, migration_id: str) -> None:
        path = _path(engine)
        # No journal beside it: the file alone holds every committed change.
        assert not [p for p in path.parent.glob(f"{path.name}-*")], "a connection is open"
        copy = self._directory / f"{migration_id.replace(':', '-')}.sqlite3"
        shutil.copyfile(path, copy)
        self._files[migration_id] = copy

    async def restore(self, engine: AnyEngine, migration_id: str) -> None:
        shutil.copyfile(self._files[migration_id], _path(engine))


def _path(engine: AnyEngine) -> Path:
    assert isinstance(engine, PooledSQLiteEngine)
    return Path(engine.path)


class PostgresSnapshots:
    """Databases made from the engine's as a template, dropped with the session's others.

    Piccolo's engine without a pool opens a connection per query and closes it, so none is
    left open on the database when it is copied or replaced (PostgreSQL refuses both then).
    The empty database a restore replaces is the next engine's (`empty`): each one left for
    the end of the session costs a checkpoint there.
    """

    def __init__(self, databases: PostgresDatabases) -> None:
        self._databases = databases
        self._urls: dict[str, str] = {}
        self._spare: list[str] = []

    def __contains__(self, migration_id: object) -> bool:
        return migration_id in self._urls

    def empty(self) -> str:
        """The URL of an empty database of its own."""
        return self._spare.pop() if self._spare else self._databases.new()

    async def keep(self, engine: AnyEngine, migration_id: str) -> None:
        self._urls[migration_id] = await self._databases.copy(_url(engine))

    async def restore(self, engine: AnyEngine, migration_id: str) -> None:
        replaced = await self._databases.replace(_url(engine), self._urls[migration_id])
        self._spare.append(replaced)


def _url(engine: AnyEngine) -> str:
    assert isinstance(engine, PostgresEngine)
    url: str = engine.config["dsn"]
    return url


_ATTACHED: dict[int, Snapshots] = {}
"""Each fixture engine's snapshots, by `id`: engines live as long as the process
(`app.database.make_engine` keeps them), so an id is never reused."""


def attach(engine: AnyEngine, snapshots: Snapshots) -> None:
    """Let `reach` fill the engine's (empty) database from `snapshots`."""
    _ATTACHED[id(engine)] = snapshots


async def reach(engine: AnyEngine, path: Sequence[str]) -> None:
    """Bring the engine's empty database to the fixture (at `path[0]`, 0003) migrated through
    each later migration of `path` in turn, starting from the snapshot furthest along it.

    Only on the database an engine fixture made, before anything else used it: the database
    a restore replaces goes, as empty, to another test.
    """
    snapshots = _ATTACHED[id(engine)]
    kept = [index for index, migration_id in enumerate(path) if migration_id in snapshots]
    if kept:
        start = kept[-1]
        await snapshots.restore(engine, path[start])
    else:
        start = 0
        await build(engine)
        await snapshots.keep(engine, path[0])
    database.bind(engine)
    for migration_id in path[start + 1 :]:
        result = await run_forwards("scalemesh", migration_id=migration_id)
        assert result.success, result.message
        await snapshots.keep(engine, migration_id)
