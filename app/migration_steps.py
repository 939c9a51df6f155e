"""How a raw-SQL migration runs its steps, on SQLite or PostgreSQL: the mechanism migrations
0007 onwards share. Each migration keeps its own schema (its SQL) frozen in its own file; only
this running of it is shared, so fixing the mechanism never changes what a migration creates.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import Engine, engine_finder

Kind = Literal["sqlite", "postgres"]
Step = str | Callable[[Engine[Any]], Awaitable[None]]
"""A DDL statement, or work on the engine (a backfill) between statements."""
Steps = Callable[[Kind], Iterable[Step]]
"""A direction's steps, for the engine's kind."""

DROP_COLUMN_SINCE = (3, 35)
"""SQLite learned `ALTER TABLE … DROP COLUMN` in 3.35: every backward step needs it."""


def add_columns(table: str, columns: Iterable[tuple[str, str]]) -> list[str]:
    """`ALTER TABLE … ADD COLUMN` for each (name, declaration), in order."""
    return [f'ALTER TABLE {table} ADD COLUMN "{name}" {kind}' for name, kind in columns]


def drop_columns(table: str, names: Iterable[str]) -> list[str]:
    """`ALTER TABLE … DROP COLUMN` for each name, last added first."""
    return [f'ALTER TABLE {table} DROP COLUMN "{name}"' for name in reversed(list(names))]


async def _run(migration_id: str, steps: Steps) -> None:
    engine = engine_finder()
    if engine is None:
        raise RuntimeError(f"migration {migration_id}: no database engine is configured")
    kind: Kind = "sqlite" if engine.engine_type == "sqlite" else "postgres"
    # Checked going forward too: a migration that could not be undone is refused up front.
    if kind == "sqlite" and sqlite3.sqlite_version_info < DROP_COLUMN_SINCE:
        raise RuntimeError(
            f"migration {migration_id} needs SQLite 3.35 or newer (ALTER TABLE DROP COLUMN); "
            f"this is {sqlite3.sqlite_version}"
        )
    for step in steps(kind):
        if isinstance(step, str):
            await engine.run_ddl(step)
        else:
            await step(engine)


def raw_migration(
    migration_id: str, description: str, forwards: Steps, backwards: Steps
) -> MigrationManager:
    """Piccolo's manager for a migration made only of `forwards` and `backwards` steps."""
    manager = MigrationManager(
        migration_id=migration_id, app_name="scalemesh", description=description
    )

    # Piccolo awaits a raw step only when it is a coroutine function.
    async def forward() -> None:
        await _run(migration_id, forwards)

    async def backward() -> None:
        await _run(migration_id, backwards)

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
