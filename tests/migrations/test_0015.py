"""Migration 0015 (a deployment built without its build cache), forward and backward, on a
database at the one before it."""

from __future__ import annotations

from typing import Any

from app.database import AnyEngine
from app.tables import Deployment
from tests.support.migration_checks import MIGRATION_0015, check_forward, check_round_trip, columns


def test_forward_marks_every_existing_deployment_as_built_with_its_cache(
    engine: AnyEngine,
) -> None:
    async def probe() -> dict[str, Any]:
        flags = await Deployment.select(Deployment.clear_cache).output(as_list=True)
        some = (await Deployment.select(Deployment.id).first())["id"]  # type: ignore[index]
        await Deployment.update({Deployment.clear_cache: True}).where(Deployment.id == some)
        stored = (
            await Deployment.select(Deployment.clear_cache).where(Deployment.id == some).first()
        )
        return {
            "flags": flags,
            "stored": stored,
            "columns": await columns(engine, "scalemesh_deployment"),
        }

    seen = check_forward(engine, MIGRATION_0015, probe)

    assert seen["flags"]
    assert set(seen["flags"]) == {False}
    assert seen["stored"]["clear_cache"] is True
    assert list(seen["columns"])[-1] == "clear_cache"
    kind, nullable, _ = seen["columns"]["clear_cache"]
    assert kind.lower() == "boolean"
    assert not nullable


def test_backward_restores_the_previous_schema_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0015)
