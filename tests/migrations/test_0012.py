"""Migration 0012 (a deployment's build config), forward and backward, on a database at the one
before it."""

from __future__ import annotations

import json
from typing import Any

from app.database import AnyEngine
from app.tables import Deployment
from tests.support.migration_checks import MIGRATION_0012, check_forward, check_round_trip, columns

CONFIG = {
    "file": "scalemesh.json",
    "fields": {"buildCommand": {"value": "npm run build", "source": "scalemesh.json"}},
    "env": {"API_URL": "production"},
    "warnings": [],
}


def test_forward_adds_an_empty_config_to_every_deployment(engine: AnyEngine) -> None:
    async def probe() -> dict[str, Any]:
        configs = await Deployment.select(Deployment.config).output(as_list=True)
        some = (await Deployment.select(Deployment.id).first())["id"]  # type: ignore[index]
        await Deployment.update({Deployment.config: json.dumps(CONFIG)}).where(
            Deployment.id == some
        )
        stored = await Deployment.select(Deployment.config).where(Deployment.id == some).first()
        return {
            "configs": configs,
            "stored": stored,
            "columns": await columns(engine, "scalemesh_deployment"),
        }

    seen = check_forward(engine, MIGRATION_0012, probe)

    assert seen["configs"]
    assert set(seen["configs"]) == {None}
    assert json.loads(seen["stored"]["config"]) == CONFIG
    assert list(seen["columns"])[-1] == "config"
    kind, nullable, _ = seen["columns"]["config"]
    assert kind.lower() == "json"
    assert nullable


def test_backward_restores_the_previous_schema_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0012)
