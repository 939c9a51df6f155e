"""Replicas: who runs each build, and the retried steps of going live and wrapping up.

- `scalemesh_replica`: each API process running the reconcile loop, with its heartbeat.
- `scalemesh_deployment.runner_owner`: the replica that started the build (existing rows: none,
  so the first replica to look adopts them).
- `scalemesh_deployment.start_after`: a queued deployment waits until then (none: at once).
- `scalemesh_deployment.publish_pending`: ready but not yet published (existing rows: false,
  they were published by the code that made them ready).
- `scalemesh_deployment.finish_claimed_until`: the lease of the replica wrapping one up.

Raw SQL with columns declared as Piccolo declares them, as in 0004 to 0006.
"""

import sqlite3

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

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


def _forwards_sql() -> list[str]:
    return [
        *(
            f'ALTER TABLE {DEPLOYMENT} ADD COLUMN "{name}" {declaration}'
            for name, declaration in NEW_COLUMNS
        ),
        f"CREATE TABLE {REPLICAS_TABLE} ({REPLICA_COLUMNS})",
    ]


def _backwards_sql() -> list[str]:
    return [
        f"DROP TABLE {REPLICAS_TABLE}",
        *(f'ALTER TABLE {DEPLOYMENT} DROP COLUMN "{name}"' for name, _ in reversed(NEW_COLUMNS)),
    ]


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
