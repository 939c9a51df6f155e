"""Migration 0016 (the base branch of a deployment's pull request), forward and backward, on a
database at the one before it."""

from __future__ import annotations

from typing import Any

from app.database import AnyEngine
from app.tables import Deployment
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


def test_forward_leaves_every_existing_deployment_without_a_base_branch(
    engine: AnyEngine,
) -> None:
    async def scenario() -> dict[str, Any]:
        await at_migration_before(engine, MIGRATION_0016)
        before = await dump(engine)
        applied = await migrate_to(engine, MIGRATION_0016)
        bases = await Deployment.select(Deployment.base_branch).output(as_list=True)
        some = (await Deployment.select(Deployment.id).first())["id"]  # type: ignore[index]
        await Deployment.update({Deployment.base_branch: "release/2.x"}).where(
            Deployment.id == some
        )
        stored = (
            await Deployment.select(Deployment.base_branch).where(Deployment.id == some).first()
        )
        return {
            "before": before,
            "after": await dump(engine),
            "applied": applied,
            "bases": bases,
            "stored": stored,
            "columns": await columns(engine, "scalemesh_deployment"),
        }

    seen = run(scenario)

    assert seen["applied"] == [MIGRATION_0016]
    assert seen["bases"]
    assert set(seen["bases"]) == {None}
    assert seen["stored"]["base_branch"] == "release/2.x"
    assert list(seen["columns"])[-1] == "base_branch"
    kind, nullable, _ = seen["columns"]["base_branch"]
    assert kind.lower() in {"varchar(255)", "character varying(255)"}
    assert nullable
    assert_rows_kept(seen["before"], seen["after"])


def test_backward_restores_the_previous_schema_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0016)
