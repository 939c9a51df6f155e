"""Build isolation: bootstrap tokens, and builds queued again after a restart.

- `scalemesh_build_token`: a running build's bootstrap token, kept hashed (the spec fetch and
  the log ingest of a builder that holds no platform secret).
- `scalemesh_deployment.attempts`: builds started for a deployment. Existing rows get 0.

Raw SQL with columns declared as Piccolo declares them, as in 0004 and 0005.
"""

import sqlite3

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T15:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "build isolation"

TOKENS_TABLE = '"scalemesh_build_token"'
TOKEN_COLUMNS = {
    "sqlite": (
        '"id" INTEGER PRIMARY KEY NOT NULL, '
        '"deployment" VARCHAR(36) UNIQUE NOT NULL REFERENCES "scalemesh_deployment" ("id") '
        "ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, "
        "\"token_hash\" VARCHAR(64) UNIQUE NOT NULL DEFAULT '', "
        '"expires_at" TIMESTAMPTZ NOT NULL, '
        '"spec_fetched_at" TIMESTAMPTZ DEFAULT null, '
        '"log_bytes" INTEGER NOT NULL DEFAULT 0'
    ),
    "postgres": (
        '"id" SERIAL PRIMARY KEY NOT NULL, '
        '"deployment" UUID UNIQUE NOT NULL REFERENCES "scalemesh_deployment" ("id") '
        "ON DELETE CASCADE ON UPDATE CASCADE, "
        "\"token_hash\" VARCHAR(64) UNIQUE NOT NULL DEFAULT '', "
        '"expires_at" TIMESTAMPTZ NOT NULL, '
        '"spec_fetched_at" TIMESTAMPTZ DEFAULT null, '
        '"log_bytes" BIGINT NOT NULL DEFAULT 0'
    ),
}


def _forwards_sql(kind: str) -> list[str]:
    return [
        'ALTER TABLE "scalemesh_deployment" ADD COLUMN "attempts" INTEGER NOT NULL DEFAULT 0',
        f"CREATE TABLE {TOKENS_TABLE} ({TOKEN_COLUMNS[kind]})",
        f'CREATE INDEX scalemesh_build_token_expires_at ON {TOKENS_TABLE} ("expires_at")',
    ]


def _backwards_sql() -> list[str]:
    return [
        f"DROP TABLE {TOKENS_TABLE}",
        'ALTER TABLE "scalemesh_deployment" DROP COLUMN "attempts"',
    ]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="scalemesh", description=DESCRIPTION)

    async def run(backwards: bool) -> None:
        engine = engine_finder()
        assert engine is not None
        kind = "sqlite" if engine.engine_type == "sqlite" else "postgres"
        if kind == "sqlite" and sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError(
                f"migration {ID} needs SQLite 3.35 or newer (ALTER TABLE DROP COLUMN); "
                f"this is {sqlite3.sqlite_version}"
            )
        for statement in _backwards_sql() if backwards else _forwards_sql(kind):
            await engine.run_ddl(statement)

    async def forward() -> None:
        await run(backwards=False)

    async def backward() -> None:
        await run(backwards=True)

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
