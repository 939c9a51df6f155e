"""Migration 0017 (the base branch of a deployment's pull request), forward and backward, on a
database at the one before it."""

from __future__ import annotations

from typing import Any

from app.database import AnyEngine
from app.tables import Deployment
from tests.support.migration_checks import MIGRATION_0017, check_forward, check_round_trip, columns


def test_forward_leaves_every_existing_deployment_without_a_base_branch(
    engine: AnyEngine,
) -> None:
    async def probe() -> dict[str, Any]:
        bases = await Deployment.select(Deployment.base_branch).output(as_list=True)
        some = (await Deployment.select(Deployment.id).first())["id"]  # type: ignore[index]
        await Deployment.update({Deployment.base_branch: "release/2.x"}).where(
            Deployment.id == some
        )
        stored = (
            await Deployment.select(Deployment.base_branch).where(Deployment.id == some).first()
        )
        return {
            "bases": bases,
            "stored": stored,
            "columns": await columns(engine, "scalemesh_deployment"),
        }

    seen = check_forward(engine, MIGRATION_0017, probe)

    assert seen["bases"]
    assert set(seen["bases"]) == {None}
    assert seen["stored"]["base_branch"] == "release/2.x"
    assert list(seen["columns"])[-1] == "base_branch"
    kind, nullable, _ = seen["columns"]["base_branch"]
    assert kind.lower() in {"varchar(255)", "character varying(255)"}
    assert nullable


def test_backward_restores_the_previous_schema_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0017)
