"""Migration 0009 (report failures), forward and backward, on a database at the one before it.

0007 and 0008 may or may not exist: 0009 needs none of their columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.database import AnyEngine
from app.tables import Deployment
from tests.support.migration_checks import (
    MIGRATION_0009,
    assert_rows_kept,
    at_migration_before,
    check_round_trip,
    columns,
    dump,
    migrate_to,
    run,
)

NEW_COLUMNS = (
    "report_attempts",
    "report_next_at",
    "report_error",
    "report_error_status",
    "report_failed_at",
)


def test_forward_leaves_every_pending_report_due(engine: AnyEngine) -> None:
    async def scenario() -> dict[str, Any]:
        await at_migration_before(engine, MIGRATION_0009)
        before = await dump(engine)
        applied = await migrate_to(engine, MIGRATION_0009)
        rows = await Deployment.select(*(getattr(Deployment, name) for name in NEW_COLUMNS))
        some = (await Deployment.select(Deployment.id).first())["id"]  # type: ignore[index]
        failed_at = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
        await Deployment.update(
            {
                Deployment.report_attempts: 3,
                Deployment.report_next_at: failed_at,
                Deployment.report_error: "GitHub answered 422: Validation Failed",
                Deployment.report_error_status: 422,
                Deployment.report_failed_at: failed_at,
            }
        ).where(Deployment.id == some)
        stored = await Deployment.select(*(getattr(Deployment, n) for n in NEW_COLUMNS)).where(
            Deployment.id == some
        )
        return {
            "before": before,
            "after": await dump(engine),
            "applied": applied,
            "rows": rows,
            "stored": stored,
            "columns": await columns(engine, "scalemesh_deployment"),
        }

    seen = run(scenario)

    assert seen["applied"] == [MIGRATION_0009]
    assert seen["rows"]
    assert all(row == dict.fromkeys(NEW_COLUMNS) | {"report_attempts": 0} for row in seen["rows"])
    [stored] = seen["stored"]
    assert stored["report_attempts"] == 3
    assert stored["report_error_status"] == 422
    assert stored["report_failed_at"] == datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
    assert set(NEW_COLUMNS) <= set(seen["columns"])
    assert not seen["columns"]["report_attempts"][1]  # NOT NULL
    assert all(seen["columns"][name][1] for name in NEW_COLUMNS[1:])
    assert_rows_kept(seen["before"], seen["after"])


def test_backward_restores_the_previous_schema_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0009)
