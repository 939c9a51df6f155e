"""Custom domains: `scalemesh_domain`, the hostnames projects claim, as `app.tables.Domain`
declares it.

- `name` unique (one project system-wide), lower-case punycode, `*.` for a wildcard;
- `project` cascades: deleting a project deletes its domains;
- indexed on `project` (a project's domains) and `next_check_at` (the reconcile loop's due
  checks).

Raw SQL with columns declared as Piccolo declares them, as in 0004 onwards, run by
`app.migration_steps`; nothing here depends on 0007 to 0009.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.migration_steps import Kind, Step, raw_migration

ID = "2026-12-03T04:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "custom domains"

TABLE = '"scalemesh_domain"'
ID_COLUMN = {
    "sqlite": '"id" INTEGER PRIMARY KEY NOT NULL',
    "postgres": '"id" SERIAL PRIMARY KEY NOT NULL',
}
PROJECT_COLUMN = {
    "sqlite": (
        '"project" INTEGER NOT NULL REFERENCES "scalemesh_project" ("id") '
        "ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null"
    ),
    "postgres": (
        '"project" INTEGER NOT NULL REFERENCES "scalemesh_project" ("id") '
        "ON DELETE CASCADE ON UPDATE CASCADE"
    ),
}
COLUMNS = (
    "\"name\" VARCHAR(253) UNIQUE NOT NULL DEFAULT ''",
    "{project}",
    '"git_branch" VARCHAR(255) DEFAULT null',
    '"redirect_to" VARCHAR(253) DEFAULT null',
    "\"token\" VARCHAR(64) NOT NULL DEFAULT ''",
    '"verified_at" TIMESTAMPTZ DEFAULT null',
    "\"routing\" VARCHAR(20) NOT NULL DEFAULT 'unknown'",
    '"check_code" VARCHAR(40) DEFAULT null',
    "\"check_detail\" TEXT NOT NULL DEFAULT ''",
    '"checked_at" TIMESTAMPTZ DEFAULT null',
    '"next_check_at" TIMESTAMPTZ DEFAULT null',
    '"check_attempts" INTEGER NOT NULL DEFAULT 0',
    '"created_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp',
    '"updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp',
)
INDEXES = {
    # Piccolo's names for `index=True`: `<table>_<column>`.
    "scalemesh_domain_project": "project",
    "scalemesh_domain_next_check_at": "next_check_at",
}


def _forwards_sql(kind: Kind) -> list[Step]:
    columns = ", ".join(column.format(project=PROJECT_COLUMN[kind]) for column in COLUMNS)
    return [
        f"CREATE TABLE {TABLE} ({ID_COLUMN[kind]}, {columns})",
        *(f'CREATE INDEX {name} ON {TABLE} ("{column}")' for name, column in INDEXES.items()),
    ]


def _backwards_sql(kind: Kind) -> list[Step]:
    return [f"DROP TABLE {TABLE}"]


async def forwards() -> MigrationManager:
    return raw_migration(ID, DESCRIPTION, _forwards_sql, _backwards_sql)
