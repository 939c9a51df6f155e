"""Migration 0006 (build isolation), forward and backward, on a database at 0005.

Each migration stops at 0006: the later ones have tests of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from piccolo.apps.migrations.commands.backwards import run_backwards

from app import database
from app.database import AnyEngine
from app.tables import BuildToken, Deployment
from tests.support.migration_checks import (
    MIGRATION_0005,
    MIGRATION_0006,
    columns,
    dump,
    migrate_to,
    refusal,
    run,
    schema,
    tables,
)
from tests.support.migration_fixture import build


async def at_0005(engine: AnyEngine) -> None:
    await build(engine)
    await migrate_to(engine, MIGRATION_0005)


def test_forward_counts_no_attempt_yet_and_adds_the_token_table(engine: AnyEngine) -> None:
    async def scenario() -> dict[str, Any]:
        await at_0005(engine)
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
        await Deployment.delete().where(Deployment.id == some)
        return {
            "before": before,
            "after": await dump(engine),
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
    for table, rows in seen["before"].items():
        for key, row in rows.items():
            if key in seen["after"].get(table, {}):
                assert {name: seen["after"][table][key][name] for name in row} == row


def test_backward_restores_0005_and_forward_runs_again(engine: AnyEngine) -> None:
    async def scenario() -> dict[str, Any]:
        await at_0005(engine)
        seen: dict[str, Any] = {
            "schema 0005": await schema(engine),
            "rows 0005": await dump(engine),
        }
        await migrate_to(engine, MIGRATION_0006)
        seen["schema 0006"] = await schema(engine)
        database.bind(engine)
        result = await run_backwards("scalemesh", migration_id=MIGRATION_0006, auto_agree=True)
        assert result.success, result.message
        seen["schema back"], seen["rows back"] = await schema(engine), await dump(engine)
        seen["applied again"] = await migrate_to(engine, MIGRATION_0006)
        seen["schema again"] = await schema(engine)
        return seen

    seen = run(scenario)

    assert seen["schema back"] == seen["schema 0005"]
    assert seen["rows back"] == seen["rows 0005"]
    assert seen["applied again"] == [MIGRATION_0006]
    assert seen["schema again"] == seen["schema 0006"]
