"""The build config of a deployment: `scalemesh_deployment.config`, as `app.tables.Deployment`
declares it.

A JSON document, null until the deployment is ready: what its build's manifest said of the
effective config (each field's value and source, env names and scopes, the warnings; never an
env value), copied by `app.deployments.build_config`. Existing deployments keep null: their
builds recorded none. Backward drops the column. Raw SQL run by `app.migration_steps`.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.migration_steps import Kind, Step, add_columns, drop_columns, raw_migration

ID = "2026-12-03T06:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "deployment build config"

TABLE = '"scalemesh_deployment"'
COLUMNS = (("config", "JSON DEFAULT null"),)


def _forwards_sql(kind: Kind) -> list[Step]:
    return list(add_columns(TABLE, COLUMNS))


def _backwards_sql(kind: Kind) -> list[Step]:
    return list(drop_columns(TABLE, (name for name, _ in COLUMNS)))


async def forwards() -> MigrationManager:
    return raw_migration(ID, DESCRIPTION, _forwards_sql, _backwards_sql)
