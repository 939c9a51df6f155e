"""The branch a deployment's pull request merges into: `scalemesh_deployment.base_branch`, as
`app.tables.Deployment` declares it.

Null for every existing deployment (their base was never stored) and for builds of no pull
request; a pull request event (`pull_request.base.ref`) sets it, and a push to a branch with an
open pull request takes it from that pull request's deployments. The build spec carries it to
the builder: a build whose branch has no cache yet (or a fork's) starts from the base branch's
before the production branch's (`builder.build_cache`). Backward drops the column. Raw SQL run
by `app.migration_steps`.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.migration_steps import Kind, Step, add_columns, drop_columns, raw_migration

ID = "2026-12-03T11:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "deployment base_branch"

TABLE = '"scalemesh_deployment"'
COLUMNS = (("base_branch", "VARCHAR(255) DEFAULT null"),)


def _forwards_sql(kind: Kind) -> list[Step]:
    return list(add_columns(TABLE, COLUMNS))


def _backwards_sql(kind: Kind) -> list[Step]:
    return list(drop_columns(TABLE, (name for name, _ in COLUMNS)))


async def forwards() -> MigrationManager:
    return raw_migration(ID, DESCRIPTION, _forwards_sql, _backwards_sql)
