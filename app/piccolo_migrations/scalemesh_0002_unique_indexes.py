"""Composite unique indexes, as raw SQL that both SQLite and PostgreSQL accept.

Piccolo's `Unique([...])` emits `ALTER TABLE .. ADD CONSTRAINT`, which SQLite refuses, and a
migration's raw steps run before its tables are created, so these live in their own migration.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-27T21:25:47:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite unique indexes"

INDEXES = {
    "scalemesh_env_var_project_name": ("scalemesh_env_var", ("project", "name")),
    "scalemesh_pull_request_comment_repository_pr": (
        "scalemesh_pull_request_comment",
        ("repository", "pr_number"),
    ),
}


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="scalemesh", description=DESCRIPTION)

    async def create() -> None:
        engine = engine_finder()
        assert engine is not None
        for name, (table, columns) in INDEXES.items():
            quoted = ", ".join(f'"{column}"' for column in columns)
            await engine.run_ddl(
                f'CREATE UNIQUE INDEX IF NOT EXISTS "{name}" ON "{table}" ({quoted})'
            )

    async def drop() -> None:
        engine = engine_finder()
        assert engine is not None
        for name in INDEXES:
            await engine.run_ddl(f'DROP INDEX IF EXISTS "{name}"')

    manager.add_raw(create)
    manager.add_raw_backwards(drop)
    return manager
