"""Retention and teardown (`app.retention`), as `app.tables` declares it.

- `scalemesh_deployment.teardown_at`: when a retired preview (pull request closed, branch
  deleted, idle past its time to live) is torn down; indexed, the reconcile loop asks for due
  ones. `pruned_at`: when its files were deleted (the row stays, its URL answers 410);
- `scalemesh_project.preview_ttl_days`: the project's idle time to live for previews (null:
  the repository's `previews.ttlDays`, else none);
- `scalemesh_chore`: one row per background chore (retention, the storage sweep): the lease that
  keeps two replicas from doing the same work, its backoff, and where the sweep stopped.

Existing rows keep nulls: nothing is due, nothing is pruned. Backward drops all of it. Raw SQL
run by `app.migration_steps`.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.migration_steps import Kind, Step, add_columns, drop_columns, raw_migration

ID = "2026-12-03T07:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "retention and teardown"

DEPLOYMENT = '"scalemesh_deployment"'
DEPLOYMENT_COLUMNS = (
    ("teardown_at", "TIMESTAMPTZ DEFAULT null"),
    ("pruned_at", "TIMESTAMPTZ DEFAULT null"),
)
TEARDOWN_INDEX = "scalemesh_deployment_teardown_at"
PROJECT = '"scalemesh_project"'
PROJECT_COLUMNS = (("preview_ttl_days", "INTEGER DEFAULT null"),)
CHORE = '"scalemesh_chore"'
ID_COLUMN = {
    "sqlite": '"id" INTEGER PRIMARY KEY NOT NULL',
    "postgres": '"id" SERIAL PRIMARY KEY NOT NULL',
}
CHORE_COLUMNS = (
    "\"name\" VARCHAR(40) UNIQUE NOT NULL DEFAULT ''",
    '"holder" VARCHAR(32) DEFAULT null',
    '"held_until" TIMESTAMPTZ DEFAULT null',
    '"next_run_at" TIMESTAMPTZ DEFAULT null',
    '"failures" INTEGER NOT NULL DEFAULT 0',
    "\"cursor\" TEXT NOT NULL DEFAULT ''",
)


def _forwards_sql(kind: Kind) -> list[Step]:
    return [
        *add_columns(DEPLOYMENT, DEPLOYMENT_COLUMNS),
        f'CREATE INDEX {TEARDOWN_INDEX} ON {DEPLOYMENT} ("teardown_at")',
        *add_columns(PROJECT, PROJECT_COLUMNS),
        f"CREATE TABLE {CHORE} ({ID_COLUMN[kind]}, {', '.join(CHORE_COLUMNS)})",
    ]


def _backwards_sql(kind: Kind) -> list[Step]:
    return [
        f"DROP TABLE {CHORE}",
        *drop_columns(PROJECT, (name for name, _ in PROJECT_COLUMNS)),
        f"DROP INDEX {TEARDOWN_INDEX}",
        *drop_columns(DEPLOYMENT, (name for name, _ in DEPLOYMENT_COLUMNS)),
    ]


async def forwards() -> MigrationManager:
    return raw_migration(ID, DESCRIPTION, _forwards_sql, _backwards_sql)
