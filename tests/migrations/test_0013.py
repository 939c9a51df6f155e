"""Migration 0013 (retention and teardown), forward and backward, on a database at the one
before it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.database import AnyEngine
from app.tables import Chore, Deployment, Project
from tests.support.migration_checks import MIGRATION_0013, check_forward, check_round_trip, columns

WHEN = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_forward_adds_empty_retention_columns_and_the_chore_table(engine: AnyEngine) -> None:
    async def probe() -> dict[str, Any]:
        stamps = await Deployment.select(Deployment.teardown_at, Deployment.pruned_at)
        ttls = await Project.select(Project.preview_ttl_days).output(as_list=True)
        some = (await Deployment.select(Deployment.id).first())["id"]  # type: ignore[index]
        await Deployment.update({Deployment.pruned_at: WHEN}).where(Deployment.id == some)
        await Chore.insert(Chore(name="sweep", cursor="__outputs/1/"))
        return {
            "stamps": stamps,
            "ttls": ttls,
            "pruned": await Deployment.count().where(Deployment.pruned_at.is_not_null()),
            "chore": await Chore.select(Chore.name, Chore.cursor, Chore.failures).first(),
            "deployment": await columns(engine, "scalemesh_deployment"),
            "project": await columns(engine, "scalemesh_project"),
        }

    seen = check_forward(engine, MIGRATION_0013, probe)

    assert seen["stamps"]
    assert {(row["teardown_at"], row["pruned_at"]) for row in seen["stamps"]} == {(None, None)}
    assert set(seen["ttls"]) == {None}
    assert seen["pruned"] == 1
    assert seen["chore"] == {"name": "sweep", "cursor": "__outputs/1/", "failures": 0}
    assert list(seen["deployment"])[-2:] == ["teardown_at", "pruned_at"]
    assert list(seen["project"])[-1] == "preview_ttl_days"
    assert seen["deployment"]["pruned_at"][1]


def test_backward_restores_the_previous_schema_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0013)
