"""Deployment columns for GitHub reporting: platform faults, fork builds, retirement, last report."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.columns.column_types import Boolean, Varchar
from piccolo.columns.indexes import IndexMethod

ID = "2026-11-28T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "github reporting columns"


def _params(**overrides: object) -> dict[str, object]:
    params: dict[str, object] = {
        "null": False,
        "primary_key": False,
        "unique": False,
        "index": False,
        "index_method": IndexMethod.btree,
        "choices": None,
        "db_column_name": None,
        "secret": False,
    }
    params.update(overrides)
    return params


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="scalemesh", description=DESCRIPTION)
    for name in ("platform_fault", "from_fork", "retired"):
        manager.add_column(
            table_class_name="Deployment",
            tablename="scalemesh_deployment",
            column_name=name,
            db_column_name=name,
            column_class_name="Boolean",
            column_class=Boolean,
            params=_params(default=False),
            schema=None,
        )
    manager.add_column(
        table_class_name="Deployment",
        tablename="scalemesh_deployment",
        column_name="github_reported",
        db_column_name="github_reported",
        column_class_name="Varchar",
        column_class=Varchar,
        params=_params(default=None, null=True, length=20),
        schema=None,
    )
    return manager
