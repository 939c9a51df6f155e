"""Env var scopes: `scalemesh_env_var` gets `scope` and `git_branch`, as `app.tables.EnvVar`
declares them, and one row per (project, name, scope, branch).

- `scope` is `production`, `preview` or `branch` (a CHECK holds it to those); `git_branch` names
  the branch of a `branch` scope and is "" otherwise;
- the unique index on (project, name) becomes one on (project, name, scope, git_branch): a name
  holds at most one value per scope, and may hold different values in different scopes;
- every existing variable becomes `production` + `preview` (what it was: every build's): its
  row is kept as `production`, and a copy made for `preview`. The sealed bytes are copied as
  they are: a value is sealed to `<project id>:<name>`, not to its scope, so the copy opens
  with the same key, and the migration needs no key.

Backward keeps one value per name (production's, else preview's, else the first branch's) and
puts the (project, name) index back. Raw SQL run by `app.migration_steps`, as from 0007 on.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from app.migration_steps import Kind, Step, add_columns, drop_columns, raw_migration

ID = "2026-12-03T05:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "env var scopes"

TABLE = '"scalemesh_env_var"'
COLUMNS = (
    ("scope", "VARCHAR(20) NOT NULL DEFAULT 'production' "
     "CHECK (\"scope\" IN ('production', 'preview', 'branch'))"),
    ("git_branch", "VARCHAR(255) NOT NULL DEFAULT ''"),
)
OLD_INDEX = '"scalemesh_env_var_project_name"'
NEW_INDEX = '"scalemesh_env_var_project_name_scope"'
_RANK = "CASE {t}.\"scope\" WHEN 'production' THEN 0 WHEN 'preview' THEN 1 ELSE 2 END"


def _forwards_sql(kind: Kind) -> list[Step]:
    return [
        *add_columns(TABLE, COLUMNS),
        f"DROP INDEX {OLD_INDEX}",
        f'INSERT INTO {TABLE} ("project", "name", "value_sealed", "updated_at", "scope", '
        '"git_branch") SELECT "project", "name", "value_sealed", "updated_at", \'preview\', \'\' '
        f"FROM {TABLE} WHERE \"scope\" = 'production'",
        f'CREATE UNIQUE INDEX {NEW_INDEX} ON {TABLE} ("project", "name", "scope", "git_branch")',
    ]


def _backwards_sql(kind: Kind) -> list[Step]:
    kept, this = _RANK.format(t="kept"), _RANK.format(t=TABLE)
    return [
        f"DROP INDEX {NEW_INDEX}",
        # Per name, the value a build of the old code would most likely have been given.
        f"DELETE FROM {TABLE} WHERE EXISTS (SELECT 1 FROM {TABLE} AS kept "
        f'WHERE kept."project" = {TABLE}."project" AND kept."name" = {TABLE}."name" '
        f"AND ({kept} < {this} OR ({kept} = {this} "
        f'AND (kept."git_branch" < {TABLE}."git_branch" '
        f'OR (kept."git_branch" = {TABLE}."git_branch" AND kept."id" < {TABLE}."id")))))',
        *drop_columns(TABLE, (name for name, _ in COLUMNS)),
        f'CREATE UNIQUE INDEX {OLD_INDEX} ON {TABLE} ("project", "name")',
    ]


async def forwards() -> MigrationManager:
    return raw_migration(ID, DESCRIPTION, _forwards_sql, _backwards_sql)
