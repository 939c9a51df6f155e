"""Migration 0004 backward: the previous schema and rows come back, and forward runs again."""

from __future__ import annotations

import copy
import sqlite3
from typing import Any

import asyncpg
from piccolo.querystring import QueryString

from app import database
from app.database import AnyEngine
from tests.support.migration_checks import (
    AFTER_0004,
    CLAIMED,
    MIGRATION_0004,
    REPORTING,
    at_migration_before,
    backward,
    comments,
    deployments,
    dump,
    migrate_to_0004,
    run,
    schema,
)
from tests.support.migration_fixture import deployment_id


def test_backward_restores_the_previous_schema_and_rows_and_forward_runs_again(
    engine: AnyEngine,
) -> None:
    async def scenario() -> dict[str, Any]:
        await at_migration_before(engine, MIGRATION_0004)
        seen: dict[str, Any] = {
            "schema 0003": await schema(engine),
            "rows 0003": await dump(engine),
        }
        await migrate_to_0004(engine)
        seen["schema 0004"], seen["rows 0004"] = await schema(engine), await dump(engine)
        await backward(engine)
        seen["schema back"], seen["rows back"] = await schema(engine), await dump(engine)
        seen["pending back"] = await database.pending_migrations(engine)
        seen["applied again"] = await migrate_to_0004(engine)
        seen["schema again"], seen["rows again"] = await schema(engine), await dump(engine)
        return seen

    seen = run(scenario)

    assert seen["schema back"] == seen["schema 0003"]
    expected = copy.deepcopy(seen["rows 0003"])
    for label in CLAIMED:  # a claim is lost: GitHub is told again
        expected["scalemesh_deployment"][str(deployment_id(label))]["github_reported"] = None
    assert seen["rows back"] == expected
    assert seen["pending back"] == [MIGRATION_0004, *AFTER_0004]
    assert seen["applied again"] == [MIGRATION_0004]
    assert seen["schema again"] == seen["schema 0004"]
    assert seen["rows again"] == seen["rows 0004"]


def test_backward_translates_what_the_new_columns_say(engine: AnyEngine) -> None:
    async def scenario() -> tuple[dict[str, dict[str, Any]], dict[tuple[str, int], Any]]:
        await at_migration_before(engine, MIGRATION_0004)
        await migrate_to_0004(engine)
        for label, pending, phase, claim in (
            ("queued-unreported", False, "queued", None),
            ("ready-reported", True, "ready", None),
            ("failed-env-vars", True, None, "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"),
            ("ready-pending", False, "unreported", None),
        ):
            await engine.run_querystring(
                QueryString(
                    'UPDATE "scalemesh_deployment" SET "report_pending" = {}, '
                    '"reported_phase" = {}, "report_claim" = {} WHERE "id" = {}',
                    pending,
                    phase,
                    claim,
                    deployment_id(label),
                )
            )
        for sql in (
            "UPDATE \"scalemesh_pull_request_comment\" SET state = 'written', comment_id = 555 "
            "WHERE repository = 'acme/site' AND pr_number = 7",
            "UPDATE \"scalemesh_pull_request_comment\" SET state = 'writing' "
            "WHERE repository = 'acme/site' AND pr_number = 12",
            'INSERT INTO "scalemesh_pull_request_comment" ("repository", "pr_number", "state") '
            "VALUES ('acme/blog', 1, 'writing')",
        ):
            await engine.run_querystring(QueryString(sql))
        await backward(engine)
        return await deployments(engine), await comments(engine)

    rows, comment_rows = run(scenario)

    assert {label: rows[label]["github_reported"] for label in rows} == {
        label: None if pending else phase for label, (pending, phase) in REPORTING.items()
    } | {
        "queued-unreported": "queued",
        "ready-reported": None,
        "failed-env-vars": None,
        "ready-pending": "unreported",
    }
    assert {key: row["comment_id"] for key, row in comment_rows.items()} == {
        ("acme/site", 7): 555,
        ("acme/site", 12): 0,
        ("acme/docs", 3): 1_987_654_321,
        ("acme/blog", 1): 0,
    }


def test_a_forward_that_fails_midway_leaves_0003_as_it_was(engine: AnyEngine) -> None:
    async def scenario() -> dict[str, Any]:
        await at_migration_before(engine, MIGRATION_0004)
        # Someone's reporting view: both engines refuse to drop a column a view reads, so the
        # migration fails after it has added and filled the new columns. (Unquoted: SQLite would
        # take a double-quoted name that no longer resolves for a string, and drop the column.)
        await engine.run_ddl(
            "CREATE VIEW reported AS SELECT id, github_reported FROM scalemesh_deployment"
        )
        seen: dict[str, Any] = {"schema": await schema(engine), "rows": await dump(engine)}
        try:
            await migrate_to_0004(engine)
        except (sqlite3.Error, asyncpg.PostgresError) as exc:
            seen["error"] = exc
        seen["schema after"], seen["rows after"] = await schema(engine), await dump(engine)
        seen["pending after"] = await database.pending_migrations(engine)
        return seen

    seen = run(scenario)

    assert "github_reported" in str(seen.get("error"))
    assert seen["schema after"] == seen["schema"]
    assert seen["rows after"] == seen["rows"]
    assert seen["pending after"] == [MIGRATION_0004, *AFTER_0004]
