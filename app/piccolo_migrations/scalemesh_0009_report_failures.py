"""Reporting failures: each deployment's report keeps its own retry time and its last error.

- `report_attempts`: failed attempts to tell GitHub the current change (0 once it heard).
- `report_next_at`: no attempt before this (backoff, or the wait GitHub asked for).
- `report_error`, `report_error_status`: the last failure's text and GitHub's HTTP status.
- `report_failed_at`: GitHub refused the report for good (a permanent 4xx); not retried.

Existing rows get 0 attempts and nulls: every pending report is due at once. Raw SQL with columns
declared as Piccolo declares them, as in 0004 to 0006; nothing here depends on 0007 or 0008.
"""

import sqlite3

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-03T03:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "report failures"

TABLE = '"scalemesh_deployment"'
COLUMNS = {
    "report_attempts": "INTEGER NOT NULL DEFAULT 0",
    "report_next_at": "TIMESTAMPTZ DEFAULT null",
    "report_error": "TEXT DEFAULT null",
    "report_error_status": "INTEGER DEFAULT null",
    "report_failed_at": "TIMESTAMPTZ DEFAULT null",
}


def _forwards_sql() -> list[str]:
    return [f'ALTER TABLE {TABLE} ADD COLUMN "{name}" {kind}' for name, kind in COLUMNS.items()]


def _backwards_sql() -> list[str]:
    return [f'ALTER TABLE {TABLE} DROP COLUMN "{name}"' for name in reversed(COLUMNS)]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="scalemesh", description=DESCRIPTION)

    async def run(backwards: bool) -> None:
        engine = engine_finder()
        assert engine is not None
        if engine.engine_type == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError(
                f"migration {ID} needs SQLite 3.35 or newer (ALTER TABLE DROP COLUMN); "
                f"this is {sqlite3.sqlite_version}"
            )
        for statement in _backwards_sql() if backwards else _forwards_sql():
            await engine.run_ddl(statement)

    async def forward() -> None:
        await run(backwards=False)

    async def backward() -> None:
        await run(backwards=True)

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
