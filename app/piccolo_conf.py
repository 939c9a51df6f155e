"""Tell Piccolo's migration runner where Scale Mesh's tables, migrations and engine are.

`DB` is not built here (that would read settings at import); `app.database.bind` sets it at
start-up, before any migration or query runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from piccolo.conf.apps import AppConfig, AppRegistry
from piccolo.engine.base import Engine

from app.tables import TABLES

DB: Engine[Any] | None = None

APP_CONFIG = AppConfig(
    app_name="scalemesh",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=list(TABLES),
)

APP_REGISTRY = AppRegistry(apps=["app.piccolo_conf"])
