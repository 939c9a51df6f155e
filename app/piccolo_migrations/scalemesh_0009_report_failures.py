"""Reporting failures: each deployment's report keeps its own retry time and its last error.

- `report_attempts`: failed attempts to tell GitHub the current change (0 once it heard).
- `report_next_at`: no attempt before this (backoff, or the wait GitHub asked for).
- `report_error`, `report_error_status`: the last failure's text and GitHub's HTTP status.
- `report_failed_at`: GitHub refused the report for good (a permanent 4xx); not retried.

Existing rows get 0 attempts and nulls: every pending report is due at once. Raw SQL with columns
declared as Piccolo declares them, as in 0004 to 0006, run by
`app.migration_steps`; nothing here depends on 0007 or 0008.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.migration_steps import Kind, Step, add_columns, drop_columns, raw_migration

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


def _forwards_sql(kind: Kind) -> list[Step]:
    return [*add_columns(TABLE, COLUMNS.items())]


def _backwards_sql(kind: Kind) -> list[Step]:
    return [*drop_columns(TABLE, COLUMNS)]


async def forwards() -> MigrationManager:
    return raw_migration(ID, DESCRIPTION, _forwards_sql, _backwards_sql)
