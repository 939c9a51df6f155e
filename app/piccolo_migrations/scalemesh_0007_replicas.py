"""Replicas: who runs each build, and the retried steps of going live and wrapping up.

- `scalemesh_replica`: each API process running the reconcile loop, with its heartbeat.
- `scalemesh_deployment.runner_owner`: the replica that started the build (existing rows: none,
  so the first replica to look adopts them).
- `scalemesh_deployment.start_after`: a queued deployment waits until then (none: at once).
- `scalemesh_deployment.publish_pending`: ready but not yet published (existing rows: false,
  they were published by the code that made them ready).
- `scalemesh_deployment.finish_claimed_until`: the lease of the replica wrapping one up.

Raw SQL with columns declared as Piccolo declares them, as in 0004 to 0006, run by
`app.migration_steps`.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.migration_steps import Kind, Step, add_columns, drop_columns, raw_migration

ID = "2026-12-03T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "replicas"

REPLICAS_TABLE = '"scalemesh_replica"'
REPLICA_COLUMNS = (
    "\"id\" VARCHAR(32) PRIMARY KEY NOT NULL DEFAULT '', "
    "\"host\" VARCHAR(255) NOT NULL DEFAULT '', "
    '"heartbeat_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
    '"started_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp'
)
DEPLOYMENT = '"scalemesh_deployment"'
NEW_COLUMNS = (
    ("runner_owner", "VARCHAR(32) DEFAULT null"),
    ("start_after", "TIMESTAMPTZ DEFAULT null"),
    ("publish_pending", "BOOLEAN NOT NULL DEFAULT false"),
    ("finish_claimed_until", "TIMESTAMPTZ DEFAULT null"),
)


def _forwards_sql(kind: Kind) -> list[Step]:
    return [
        *add_columns(DEPLOYMENT, NEW_COLUMNS),
        f"CREATE TABLE {REPLICAS_TABLE} ({REPLICA_COLUMNS})",
    ]


def _backwards_sql(kind: Kind) -> list[Step]:
    return [
        f"DROP TABLE {REPLICAS_TABLE}",
        *drop_columns(DEPLOYMENT, (name for name, _ in NEW_COLUMNS)),
    ]


async def forwards() -> MigrationManager:
    return raw_migration(ID, DESCRIPTION, _forwards_sql, _backwards_sql)
