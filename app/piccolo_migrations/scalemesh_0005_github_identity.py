"""Identity and access rooted in GitHub: GitHub accounts, admins, bound projects, protection.

- `scalemesh_github_account`: the GitHub identity an account signed in with, and its sealed user
  token. A new table rather than columns on the user: most accounts have none.
- `scalemesh_user.is_admin`: the first account (lowest id) becomes the admin.
- `scalemesh_project.github_repository_id`, `protection`, `bypass_hash`. No existing project is
  bound (a binding needs a user with push access on the repository, which nobody checked), so
  pushes stop building them until someone with push access links them again.
- `scalemesh_oauth_state`: a sign-in with GitHub under way (single-use state).
- `scalemesh_api_token.expires_at`; `scalemesh_login_failure.client`.

Every step is raw SQL, as in 0004, with columns declared as Piccolo declares them (its SQLite
engine converts values by declared type).
"""

import sqlite3

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T10:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "github identity and access"

GITHUB_ACCOUNT = '"scalemesh_github_account"'
OAUTH_STATE = '"scalemesh_oauth_state"'
OAUTH_STATE_COLUMNS = {
    "sqlite": '"id" INTEGER PRIMARY KEY NOT NULL',
    "postgres": '"id" SERIAL PRIMARY KEY NOT NULL',
}
OAUTH_STATE_REST = (
    "\"state_hash\" VARCHAR(64) UNIQUE NOT NULL DEFAULT '', "
    "\"next_path\" VARCHAR(2000) NOT NULL DEFAULT '/', "
    '"expires_at" TIMESTAMPTZ NOT NULL'
)

NEW_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    # (table, column, SQLite definition, PostgreSQL definition)
    ('"scalemesh_user"', "is_admin", "BOOLEAN NOT NULL DEFAULT false", ""),
    ('"scalemesh_project"', "github_repository_id", "INTEGER DEFAULT null", "BIGINT DEFAULT null"),
    ('"scalemesh_project"', "protection", "VARCHAR(20) NOT NULL DEFAULT 'none'", ""),
    ('"scalemesh_project"', "bypass_hash", "VARCHAR(64) DEFAULT null", ""),
    ('"scalemesh_api_token"', "expires_at", "TIMESTAMPTZ DEFAULT null", ""),
    ('"scalemesh_login_failure"', "client", "VARCHAR(64) NOT NULL DEFAULT ''", ""),
)
"""An empty PostgreSQL definition is the SQLite one."""

INDEXES = (
    'CREATE INDEX IF NOT EXISTS scalemesh_project_github_repository_id ON "scalemesh_project" '
    '("github_repository_id")',
    'CREATE INDEX IF NOT EXISTS scalemesh_login_failure_client ON "scalemesh_login_failure" '
    '("client")',
)

ACCOUNT_COLUMNS = {
    "sqlite": (
        '"id" INTEGER PRIMARY KEY NOT NULL, '
        '"user" INTEGER UNIQUE NOT NULL REFERENCES "scalemesh_user" ("id") '
        "ON DELETE CASCADE ON UPDATE CASCADE DEFAULT null, "
        '"github_id" INTEGER UNIQUE NOT NULL DEFAULT 0, '
        "\"login\" VARCHAR(100) NOT NULL DEFAULT '', "
        "\"token_sealed\" BLOB NOT NULL DEFAULT '', "
        '"token_expires_at" TIMESTAMPTZ DEFAULT null, '
        '"refresh_sealed" BLOB DEFAULT null, '
        '"refresh_expires_at" TIMESTAMPTZ DEFAULT null, '
        '"updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp'
    ),
    "postgres": (
        '"id" SERIAL PRIMARY KEY NOT NULL, '
        '"user" INTEGER UNIQUE NOT NULL REFERENCES "scalemesh_user" ("id") '
        "ON DELETE CASCADE ON UPDATE CASCADE, "
        '"github_id" BIGINT UNIQUE NOT NULL DEFAULT 0, '
        "\"login\" VARCHAR(100) NOT NULL DEFAULT '', "
        "\"token_sealed\" BYTEA NOT NULL DEFAULT '\\x'::bytea, "
        '"token_expires_at" TIMESTAMPTZ DEFAULT null, '
        '"refresh_sealed" BYTEA DEFAULT null, '
        '"refresh_expires_at" TIMESTAMPTZ DEFAULT null, '
        '"updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp'
    ),
}

FIRST_ACCOUNT_IS_ADMIN = (
    'UPDATE "scalemesh_user" SET "is_admin" = true '
    'WHERE "id" = (SELECT min("id") FROM "scalemesh_user")'
)
PRIVATE_REPOSITORIES_PROTECT_PREVIEWS = (
    """UPDATE "scalemesh_project" SET "protection" = 'previews' WHERE EXISTS """
    '(SELECT 1 FROM "scalemesh_repository" r '
    'WHERE lower(r."full_name") = lower("scalemesh_project"."github_repository") '
    'AND r."private")'
)
"""Private repositories' previews become protected, as new projects on them are."""


def _forwards_sql(kind: str) -> list[str]:
    statements = [
        f'ALTER TABLE {table} ADD COLUMN "{column}" '
        f"{postgres if kind == 'postgres' and postgres else sqlite}"
        for table, column, sqlite, postgres in NEW_COLUMNS
    ]
    return [
        *statements,
        *INDEXES,
        f"CREATE TABLE {GITHUB_ACCOUNT} ({ACCOUNT_COLUMNS[kind]})",
        f"CREATE TABLE {OAUTH_STATE} ({OAUTH_STATE_COLUMNS[kind]}, {OAUTH_STATE_REST})",
        f"CREATE INDEX scalemesh_oauth_state_expires_at ON {OAUTH_STATE} (\"expires_at\")",
        FIRST_ACCOUNT_IS_ADMIN,
        PRIVATE_REPOSITORIES_PROTECT_PREVIEWS,
    ]


def _backwards_sql() -> list[str]:
    return [
        f"DROP TABLE {GITHUB_ACCOUNT}",
        f"DROP TABLE {OAUTH_STATE}",
        "DROP INDEX scalemesh_project_github_repository_id",
        "DROP INDEX scalemesh_login_failure_client",
        *(f'ALTER TABLE {table} DROP COLUMN "{column}"' for table, column, _, _ in NEW_COLUMNS),
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
