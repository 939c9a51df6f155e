"""Build isolation: bootstrap tokens, and builds queued again after a restart.

- `scalemesh_build_token`: a running build's bootstrap token, kept hashed (the spec fetch and
  the log ingest of a builder that holds no platform secret).
- `scalemesh_deployment.attempts`: builds started for a deployment. Existing rows get 0.

Raw SQL with columns declared as Piccolo declares them, as in 0004 and 0005, run by
`app.migration_steps`.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.migration_steps import Kind, Step, raw_migration

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


def _forwards_sql(kind: Kind) -> list[Step]:
    return [
        'ALTER TABLE "scalemesh_deployment" ADD COLUMN "attempts" INTEGER NOT NULL DEFAULT 0',
        f"CREATE TABLE {TOKENS_TABLE} ({TOKEN_COLUMNS[kind]})",
        f'CREATE INDEX scalemesh_build_token_expires_at ON {TOKENS_TABLE} ("expires_at")',
    ]


def _backwards_sql(kind: Kind) -> list[Step]:
    return [
        f"DROP TABLE {TOKENS_TABLE}",
        'ALTER TABLE "scalemesh_deployment" DROP COLUMN "attempts"',
    ]


async def forwards() -> MigrationManager:
    return raw_migration(ID, DESCRIPTION, _forwards_sql, _backwards_sql)
