"""Production pinned by a rollback: four columns of `scalemesh_project`, as `app.tables.Project`
declares them.

- `production_pinned_to`: the deployment production stays on (null: production follows pushes);
- `production_pinned_at`, `production_pinned_by` (a user, set null when the account goes): when
  and by whom;
- `production_github_deployment_id`: the GitHub Deployment a promote or rollback last reported
  as production, marked `inactive` when the next one replaces it.

Existing projects are not pinned. Backward drops the columns. Raw SQL run by
`app.migration_steps`.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.migration_steps import Kind, Step, add_columns, drop_columns, raw_migration

ID = "2026-12-03T08:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "production pin"

TABLE = '"scalemesh_project"'
COLUMNS = (
    ("production_pinned_to", "UUID DEFAULT null"),
    ("production_pinned_at", "TIMESTAMPTZ DEFAULT null"),
    (
        "production_pinned_by",
        'INTEGER REFERENCES "scalemesh_user" ("id") '
        "ON DELETE SET NULL ON UPDATE CASCADE DEFAULT null",
    ),
    ("production_github_deployment_id", "BIGINT DEFAULT null"),
)


def _forwards_sql(kind: Kind) -> list[Step]:
    return list(add_columns(TABLE, COLUMNS))


def _backwards_sql(kind: Kind) -> list[Step]:
    return list(drop_columns(TABLE, (name for name, _ in COLUMNS)))


async def forwards() -> MigrationManager:
    return raw_migration(ID, DESCRIPTION, _forwards_sql, _backwards_sql)
