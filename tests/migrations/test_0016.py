"""Migration 0016 (promotion reports), forward and backward, on a database at the one before it."""

from __future__ import annotations

from typing import Any

from app.database import AnyEngine
from app.tables import Deployment, Project, PromotionReport
from tests.support.migration_checks import (
    MIGRATION_0016,
    assert_rows_kept,
    at_migration_before,
    check_round_trip,
    columns,
    dump,
    migrate_to,
    run,
)


def test_forward_adds_an_empty_report_table_whose_rows_go_with_their_deployment(
    engine: AnyEngine,
) -> None:
    async def scenario() -> dict[str, Any]:
        await at_migration_before(engine, MIGRATION_0016)
        before = await dump(engine)
        applied = await migrate_to(engine, MIGRATION_0016)
        after = await dump(engine)
        empty = await PromotionReport.count()
        row = await Deployment.select(Deployment.id, Deployment.project).first()
        assert row is not None
        await PromotionReport.insert(
            PromotionReport(project=row["project"], deployment=row["id"], pinned=True)
        )
        stored = await PromotionReport.select(
            PromotionReport.pinned,
            PromotionReport.replaced,
            PromotionReport.attempts,
            PromotionReport.failed_at,
        ).first()
        await Deployment.delete().where(Deployment.id == row["id"])
        left = await PromotionReport.count()
        projects = await Project.count()
        return {
            "before": before,
            "after": after,
            "applied": applied,
            "empty": empty,
            "stored": stored,
            "left": left,
            "projects": projects,
            "columns": await columns(engine, "scalemesh_promotion_report"),
        }

    seen = run(scenario)

    assert seen["applied"] == [MIGRATION_0016]
    assert seen["empty"] == 0
    assert seen["stored"] == {"pinned": True, "replaced": None, "attempts": 0, "failed_at": None}
    assert seen["left"] == 0  # the report went with its deployment
    assert seen["projects"] > 0
    assert list(seen["columns"])[:4] == ["id", "project", "deployment", "replaced"]
    assert not seen["columns"]["deployment"][1]  # NOT NULL
    after = seen["after"]
    assert after.pop("scalemesh_promotion_report") == {}
    assert_rows_kept(seen["before"], after)


def test_backward_restores_the_previous_schema_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0016)
