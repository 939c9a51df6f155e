"""Migration 0007 (replicas), forward and backward, on a database at 0006."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.database import AnyEngine
from app.tables import Deployment, Replica
from tests.support.migration_checks import (
    MIGRATION_0007,
    assert_rows_kept,
    at_migration_before,
    check_round_trip,
    columns,
    dump,
    migrate_to,
    refusal,
    run,
    tables,
)

NEW_COLUMNS = {"runner_owner", "start_after", "publish_pending", "finish_claimed_until"}


def test_forward_adds_the_replica_table_and_leaves_every_deployment_published_and_ownerless(
    engine: AnyEngine,
) -> None:
    async def scenario() -> dict[str, Any]:
        await at_migration_before(engine, MIGRATION_0007)
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
    assert_rows_kept(seen["before"], seen["after"])


def test_backward_restores_0006_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0007)
