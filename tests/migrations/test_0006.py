"""Migration 0006 (build isolation), forward and backward, on a database at 0005.

Each migration stops at 0006: the later ones have tests of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.database import AnyEngine
from app.tables import BuildToken, Deployment
from tests.support.migration_checks import (
    MIGRATION_0006,
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


def test_forward_counts_no_attempt_yet_and_adds_the_token_table(engine: AnyEngine) -> None:
    async def scenario() -> dict[str, Any]:
        await at_migration_before(engine, MIGRATION_0006)
        before = await dump(engine)
        applied = await migrate_to(engine, MIGRATION_0006)
        rows = await Deployment.select(Deployment.id, Deployment.attempts)
        some = rows[0]["id"]
        await BuildToken.insert(
            BuildToken(
                deployment=some,
                token_hash="a" * 64,
                expires_at=datetime.now(UTC) + timedelta(minutes=5),
            )
        )
        duplicate = await refusal(
            engine,
            'INSERT INTO "scalemesh_build_token" ("deployment", "token_hash", "expires_at") '
            "VALUES ({}, {}, current_timestamp)",
            some,
            "b" * 64,
        )
        tokens = await BuildToken.select(BuildToken.token_hash, BuildToken.log_bytes)
        after = await dump(engine)
        await Deployment.delete().where(Deployment.id == some)
        return {
            "before": before,
            "after": after,
            "applied": applied,
            "attempts": {row["attempts"] for row in rows},
            "tables": set(await tables(engine)),
            "token columns": await columns(engine, "scalemesh_build_token"),
            "tokens": tokens,
            "duplicate": duplicate,
            "tokens after delete": await BuildToken.count(),
        }

    seen = run(scenario)

    assert seen["applied"] == [MIGRATION_0006]
    assert seen["attempts"] == {0}
    assert "scalemesh_build_token" in seen["tables"]
    assert set(seen["token columns"]) == {
        "id",
        "deployment",
        "token_hash",
        "expires_at",
        "spec_fetched_at",
        "log_bytes",
    }
    assert seen["tokens"] == [{"token_hash": "a" * 64, "log_bytes": 0}]
    assert seen["duplicate"] is not None  # one token per deployment
    assert seen["tokens after delete"] == 0  # a deployment's token goes with it
    assert_rows_kept(seen["before"], seen["after"])


def test_backward_restores_0005_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0006)
