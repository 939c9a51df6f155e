"""A deployment built without its build cache: `scalemesh_deployment.clear_cache`, as
`app.tables.Deployment` declares it.

False for every existing deployment (they were built before there was a cache to skip);
`POST /deploy {"clear_cache": true}` and the "Redeploy without cache" button set it, and the
build spec carries it to the builder (`builder.build_cache`). Backward drops the column. Raw SQL
run by `app.migration_steps`.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.migration_steps import Kind, Step, add_columns, drop_columns, raw_migration

ID = "2026-12-03T09:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "deployment clear_cache"

TABLE = '"scalemesh_deployment"'
COLUMNS = (("clear_cache", "BOOLEAN NOT NULL DEFAULT false"),)


def _forwards_sql(kind: Kind) -> list[Step]:
    return list(add_columns(TABLE, COLUMNS))


def _backwards_sql(kind: Kind) -> list[Step]:
    return list(drop_columns(TABLE, (name for name, _ in COLUMNS)))


async def forwards() -> MigrationManager:
    return raw_migration(ID, DESCRIPTION, _forwards_sql, _backwards_sql)
