"""Migration 0007 (replicas), forward and backward, on a database at 0006."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from piccolo.apps.migrations.commands.backwards import run_backwards

from app import database
from app.database import AnyEngine
from app.tables import Deployment, Replica
from tests.support.migration_checks import (
    MIGRATION_0006,
    MIGRATION_0007,
    columns,
    dump,
    migrate_to,
    refusal,
    run,
    schema,
    tables,
)
from tests.support.migration_fixture import build

NEW_COLUMNS = {"runner_owner", "start_after", "publish_pending", "finish_claimed_until"}


async def at_0006(engine: AnyEngine) -> None:
    await build(engine)
    await migrate_to(engine, MIGRATION_0006)


def test_forward_adds_the_replica_table_and_leaves_every_deployment_published_and_ownerless(
    engine: AnyEngine,
) -> None:
    async def scenario() -> dict[str, Any]:
        await at_0006(engine)
        before = await dump(engine)
        applied = await migrate_to(engine, MIGRATION_0007)
        now = datetime.now(UTC)
        await Replica.insert(Replica(id="a" * 16, host="node-1", heartbeat_at=now))
        duplicate = await refusal(
            engine, 'INSERT INTO "scalemesh_replica" ("id", "host") VALUES ({}, {})', "a" * 16, "x"
        )
        rows = await Deployment.select(
            Deployment.runner_owner,
            Deployment.start_after,
            Deployment.publish_pending,
            Deployment.finish_claimed_until,
        )
        return {
            "before": before,
            "after": await dump(engine),
            "applied": applied,
            "tables": set(await tables(engine)),
            "deployment columns": set(await columns(engine, "scalemesh_deployment")),
            "replica columns": list(await columns(engine, "scalemesh_replica")),
            "replicas": await Replica.select(Replica.id, Replica.host),
            "duplicate": duplicate,
            "rows": rows,
        }

    seen = run(scenario)

    assert seen["applied"] == [MIGRATION_0007]
    assert "scalemesh_replica" in seen["tables"]
    assert seen["deployment columns"] >= NEW_COLUMNS
    assert seen["replica columns"] == ["id", "host", "heartbeat_at", "started_at"]
    assert seen["replicas"] == [{"id": "a" * 16, "host": "node-1"}]
    assert seen["duplicate"] is not None  # one row per replica
    assert seen["rows"]
    assert {tuple(row.values()) for row in seen["rows"]} == {(None, None, False, None)}
    for table, rows in seen["before"].items():
        for key, row in rows.items():
            assert {name: seen["after"][table][key][name] for name in row} == row


def test_backward_restores_0006_and_forward_runs_again(engine: AnyEngine) -> None:
    async def scenario() -> dict[str, Any]:
        await at_0006(engine)
        seen: dict[str, Any] = {
            "schema 0006": await schema(engine),
            "rows 0006": await dump(engine),
        }
        await migrate_to(engine, MIGRATION_0007)
        seen["schema 0007"] = await schema(engine)
        database.bind(engine)
        result = await run_backwards("scalemesh", migration_id=MIGRATION_0007, auto_agree=True)
        assert result.success, result.message
        seen["schema back"], seen["rows back"] = await schema(engine), await dump(engine)
        seen["applied again"] = await migrate_to(engine, MIGRATION_0007)
        seen["schema again"] = await schema(engine)
        return seen

    seen = run(scenario)

    assert seen["schema back"] == seen["schema 0006"]
    assert seen["rows back"] == seen["rows 0006"]
    assert seen["applied again"] == [MIGRATION_0007]
    assert seen["schema again"] == seen["schema 0007"]
