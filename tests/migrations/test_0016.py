"""Migration 0016 (promotion reports), forward and backward, on a database at the one before it."""

from __future__ import annotations

import uuid
from typing import Any

from app.database import AnyEngine
from app.tables import Deployment, PromotionReport
from tests.support.migration_checks import (
    MIGRATION_0016,
    check_forward,
    check_round_trip,
    columns,
    select,
)


def test_forward_adds_an_empty_report_table_whose_rows_go_with_their_deployment(
    engine: AnyEngine,
) -> None:
    async def probe() -> dict[str, Any]:
        empty = await PromotionReport.count()
        project = (await Deployment.select(Deployment.project).first())["project"]  # type: ignore[index]
        added = str(uuid.uuid4())
        # In SQL: the table as of 0016, not `Deployment` as later migrations grew it.
        await select(
            engine,
            'INSERT INTO "scalemesh_deployment" ("id", "project") VALUES ({}, {})',
            uuid.UUID(added),
            project,
        )
        await PromotionReport.insert(
            PromotionReport(project=project, deployment=added, pinned=True)
        )
        stored = await PromotionReport.select(
            PromotionReport.pinned,
            PromotionReport.replaced,
            PromotionReport.attempts,
            PromotionReport.failed_at,
        ).first()
        await Deployment.delete().where(Deployment.id == added)
        return {
            "empty": empty,
            "stored": stored,
            "left": await PromotionReport.count(),
            "columns": await columns(engine, "scalemesh_promotion_report"),
        }

    seen = check_forward(engine, MIGRATION_0016, probe)

    assert seen["empty"] == 0
    assert seen["stored"] == {"pinned": True, "replaced": None, "attempts": 0, "failed_at": None}
    assert seen["left"] == 0  # the report went with its deployment
    assert list(seen["columns"])[:4] == ["id", "project", "deployment", "replaced"]
    assert not seen["columns"]["deployment"][1]  # NOT NULL


def test_backward_restores_the_previous_schema_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0016)
