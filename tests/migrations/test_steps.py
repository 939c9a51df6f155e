"""`app.migration_steps`, the mechanism the raw-SQL migrations share: what it refuses to run."""

from __future__ import annotations

from typing import Any

import pytest
from piccolo.apps.migrations.commands.forwards import run_forwards

from app import database, migration_steps
from app.database import AnyEngine
from tests.support.migration_checks import (
    MIGRATION_0007,
    at_migration_before,
    dump,
    run,
    schema,
)


def test_sqlite_older_than_3_35_is_refused_before_any_change(
    engine: AnyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Such a SQLite could not undo the migration (no DROP COLUMN): it is not started at all.
    # PostgreSQL does not care which SQLite the machine has.
    async def scenario() -> dict[str, Any]:
        await at_migration_before(engine, MIGRATION_0007)
        # Only now: the earlier migrations check the same (global) version.
        monkeypatch.setattr(migration_steps.sqlite3, "sqlite_version_info", (3, 34, 1))
        before = {"schema": await schema(engine), "rows": await dump(engine)}
        try:
            refused = not (await run_forwards("scalemesh", migration_id=MIGRATION_0007)).success
        except RuntimeError as exc:
            refused = "needs SQLite 3.35 or newer" in str(exc)
        return {
            "before": before,
            "after": {"schema": await schema(engine), "rows": await dump(engine)},
            "refused": refused,
            "pending": await database.pending_migrations(engine),
        }

    seen = run(scenario)

    if engine.engine_type == "sqlite":
        assert seen["refused"]
        assert seen["after"] == seen["before"]
        assert MIGRATION_0007 in seen["pending"]
    else:
        assert not seen["refused"]
        assert MIGRATION_0007 not in seen["pending"]


def test_without_an_engine_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migration_steps, "engine_finder", lambda: None)
    ran: list[str] = []

    def steps(kind: migration_steps.Kind) -> list[migration_steps.Step]:
        ran.append(kind)
        return []

    manager = migration_steps.raw_migration(MIGRATION_0007, "test", steps, steps)
    with pytest.raises(RuntimeError, match="no database engine"):
        run(manager.raw[0])
    assert ran == []
