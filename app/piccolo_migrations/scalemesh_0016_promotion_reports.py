"""Promotion reports: `scalemesh_promotion_report`, as `app.tables.PromotionReport` declares it.

One row per promote, rollback or unpin GitHub has not heard of yet, written in the transaction
that moves production (`app.deployments.pinning`) and deleted once GitHub was told
(`app.reporting.promotions`); a refused one stays, with `failed_at`. `project` and
`deployment` cascade: deleting either deletes its reports. Indexed on `project` (each project's
reports go in order).

Nothing existing is reported again: the table starts empty. Backward drops it. Raw SQL run by
`app.migration_steps`.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.migration_steps import Kind, Step, raw_migration

ID = "2026-12-03T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "promotion reports"

TABLE = '"scalemesh_promotion_report"'
KEYS = {
    "sqlite": (
        '"id" INTEGER PRIMARY KEY NOT NULL',
        '"project" INTEGER NOT NULL REFERENCES "scalemesh_project" ("id") '
        "ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null",
        '"deployment" VARCHAR(36) NOT NULL REFERENCES "scalemesh_deployment" ("id") '
        "ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null",
    ),
    "postgres": (
        '"id" SERIAL PRIMARY KEY NOT NULL',
        '"project" INTEGER NOT NULL REFERENCES "scalemesh_project" ("id") '
        "ON DELETE CASCADE ON UPDATE CASCADE",
        '"deployment" UUID NOT NULL REFERENCES "scalemesh_deployment" ("id") '
        "ON DELETE CASCADE ON UPDATE CASCADE",
    ),
}
COLUMNS = (
    '"replaced" UUID DEFAULT null',
    '"pinned" BOOLEAN NOT NULL DEFAULT false',
    '"created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp',
    '"attempts" INTEGER NOT NULL DEFAULT 0',
    '"next_at" TIMESTAMPTZ DEFAULT null',
    '"failed_at" TIMESTAMPTZ DEFAULT null',
    '"error" TEXT DEFAULT null',
    '"error_status" INTEGER DEFAULT null',
    '"claim" VARCHAR(32) DEFAULT null',
    '"claimed_until" TIMESTAMPTZ DEFAULT null',
)
PROJECT_INDEX = "scalemesh_promotion_report_project"
"""Piccolo's name for `index=True`: `<table>_<column>`."""


def _forwards_sql(kind: Kind) -> list[Step]:
    return [
        f"CREATE TABLE {TABLE} ({', '.join((*KEYS[kind], *COLUMNS))})",
        f'CREATE INDEX {PROJECT_INDEX} ON {TABLE} ("project")',
    ]


def _backwards_sql(kind: Kind) -> list[Step]:
    return [f"DROP TABLE {TABLE}"]


async def forwards() -> MigrationManager:
    return raw_migration(ID, DESCRIPTION, _forwards_sql, _backwards_sql)
