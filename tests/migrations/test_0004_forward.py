"""Migration 0004 forward, on a database at 0003 filled as that schema's code filled it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from piccolo.querystring import QueryString

from app import database
from app.database import AnyEngine
from tests.support.migration_checks import (
    AFTER_0004,
    COLUMNS_AFTER,
    ERROR_CODES,
    MIGRATION_0004,
    NEW_DEPLOYMENT_COLUMNS,
    REPORTING,
    Column,
    at_migration_before,
    columns,
    comments,
    deployments,
    dump,
    is_not_null_violation,
    migrate_to_0004,
    refusal,
    run,
    select,
)
from tests.support.migration_fixture import NOW, deployment_id


def test_the_fixture_stops_at_0003_and_forward_applies_0004_alone(engine: AnyEngine) -> None:
    async def scenario() -> tuple[list[str], list[str], list[str]]:
        await at_migration_before(engine, MIGRATION_0004)
        pending = await database.pending_migrations(engine)
        applied = await migrate_to_0004(engine)
        return pending, applied, await database.pending_migrations(engine)

    pending, applied, left = run(scenario)

    assert pending == [MIGRATION_0004, *AFTER_0004]
    assert applied == [MIGRATION_0004]
    assert left == AFTER_0004


def test_github_reported_becomes_report_pending_and_reported_phase(engine: AnyEngine) -> None:
    async def scenario() -> dict[str, dict[str, Any]]:
        await at_migration_before(engine, MIGRATION_0004)
        await migrate_to_0004(engine)
        return await deployments(engine)

    rows = run(scenario)

    reporting = {
        label: (row["report_pending"], row["reported_phase"]) for label, row in rows.items()
    }
    assert reporting == REPORTING
    # The previous code's claims are not carried over: those rows are pending again.
    assert {(row["report_claim"], row["report_claimed_until"]) for row in rows.values()} == {
        (None, None)
    }
    assert all("github_reported" not in row for row in rows.values())


def test_the_error_code_is_read_off_the_old_error_text(engine: AnyEngine) -> None:
    async def scenario() -> dict[str, dict[str, Any]]:
        await at_migration_before(engine, MIGRATION_0004)
        await migrate_to_0004(engine)
        return await deployments(engine)

    rows = run(scenario)

    assert {label: row["error_code"] for label, row in rows.items()} == ERROR_CODES


def test_every_other_stored_value_is_kept(engine: AnyEngine) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        await at_migration_before(engine, MIGRATION_0004)
        before = await dump(engine)
        await migrate_to_0004(engine)
        return before, await dump(engine)

    before, after = run(scenario)

    assert after.keys() == before.keys()
    for table in before.keys() - {"scalemesh_deployment", "scalemesh_pull_request_comment"}:
        assert after[table] == before[table], table
    assert len(after["scalemesh_alias"]) == 3, "no deployment row was deleted and re-inserted"
    old = {
        key: {name: value for name, value in row.items() if name != "github_reported"}
        for key, row in before["scalemesh_deployment"].items()
    }
    new = {
        key: {name: value for name, value in row.items() if name not in NEW_DEPLOYMENT_COLUMNS}
        for key, row in after["scalemesh_deployment"].items()
    }
    assert new == old


def test_a_comment_being_written_gets_state_writing_and_no_id(engine: AnyEngine) -> None:
    async def scenario() -> tuple[dict[tuple[str, int], Any], dict[tuple[str, int], Any]]:
        await at_migration_before(engine, MIGRATION_0004)
        before = await comments(engine)
        await migrate_to_0004(engine)
        return before, await comments(engine)

    before, after = run(scenario)

    assert {key: (row["state"], row["comment_id"]) for key, row in after.items()} == {
        ("acme/site", 7): ("writing", None),
        ("acme/site", 12): ("written", 2_147_483_648_123),
        ("acme/docs", 3): ("written", 1_987_654_321),
    }
    kept = ("id", "updated_at")
    assert {key: [row[name] for name in kept] for key, row in after.items()} == {
        key: [row[name] for name in kept] for key, row in before.items()
    }


def test_the_new_columns_have_their_types_nullability_and_defaults(engine: AnyEngine) -> None:
    async def scenario() -> dict[str, dict[str, Column]]:
        await at_migration_before(engine, MIGRATION_0004)
        await migrate_to_0004(engine)
        return {
            table: await columns(engine, table)
            for table in ("scalemesh_deployment", "scalemesh_pull_request_comment")
        }

    described = run(scenario)

    expected = COLUMNS_AFTER[engine.engine_type]
    assert {key: described[key[0]][key[1]] for key in expected} == expected
    assert "github_reported" not in described["scalemesh_deployment"]
    assert list(described["scalemesh_pull_request_comment"]) == [
        "id",
        "repository",
        "pr_number",
        "comment_id",
        "updated_at",
        "state",
    ]


def test_rows_written_without_the_new_columns_get_their_defaults(engine: AnyEngine) -> None:
    new_id = uuid.UUID("0d15ea5e-0000-4000-8000-000000000001")

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        await at_migration_before(engine, MIGRATION_0004)
        await migrate_to_0004(engine)
        [project] = await select(engine, "SELECT id FROM \"scalemesh_project\" WHERE slug = 'site'")
        await engine.run_querystring(
            QueryString(
                'INSERT INTO "scalemesh_deployment" ("id", "project", "state") VALUES ({}, {}, {})',
                new_id,
                project["id"],
                "queued",
            )
        )
        await engine.run_querystring(
            QueryString(
                'INSERT INTO "scalemesh_pull_request_comment" ("repository", "pr_number") '
                "VALUES ({}, {})",
                "acme/blog",
                1,
            )
        )
        claimed_until = NOW + timedelta(minutes=2)
        await engine.run_querystring(
            QueryString(
                'UPDATE "scalemesh_deployment" SET "report_claim" = {}, '
                '"report_claimed_until" = {} WHERE "id" = {}',
                "9f86d081884c7d659a2feaa0c55ad015",
                claimed_until,
                deployment_id("ready-pending"),
            )
        )
        [deployment] = await select(
            engine, 'SELECT * FROM "scalemesh_deployment" WHERE "id" = {}', new_id
        )
        [comment] = await select(
            engine,
            "SELECT * FROM \"scalemesh_pull_request_comment\" WHERE repository = 'acme/blog'",
        )
        [claimed] = await select(
            engine,
            'SELECT * FROM "scalemesh_deployment" WHERE "id" = {}',
            deployment_id("ready-pending"),
        )
        return deployment, comment, claimed

    deployment, comment, claimed = run(scenario)

    assert {name: deployment[name] for name in NEW_DEPLOYMENT_COLUMNS} == {
        "error_code": None,
        "report_pending": True,
        "reported_phase": None,
        "report_claim": None,
        "report_claimed_until": None,
    }
    assert (comment["state"], comment["comment_id"]) == ("written", None)
    assert (claimed["report_claim"], claimed["report_claimed_until"]) == (
        "9f86d081884c7d659a2feaa0c55ad015",
        NOW + timedelta(minutes=2),
    )


def test_the_not_null_columns_refuse_null(engine: AnyEngine) -> None:
    async def scenario() -> list[BaseException | None]:
        await at_migration_before(engine, MIGRATION_0004)
        await migrate_to_0004(engine)
        return [
            await refusal(
                engine,
                'UPDATE "scalemesh_deployment" SET "report_pending" = NULL WHERE "id" = {}',
                deployment_id("ready-reported"),
            ),
            await refusal(
                engine,
                'UPDATE "scalemesh_pull_request_comment" SET "state" = NULL '
                "WHERE repository = 'acme/site' AND pr_number = 12",
            ),
        ]

    assert [is_not_null_violation(exc) for exc in run(scenario)] == [True, True]


def test_one_comment_per_pull_request_still(engine: AnyEngine) -> None:
    async def scenario() -> tuple[BaseException | None, BaseException | None]:
        await at_migration_before(engine, MIGRATION_0004)
        await migrate_to_0004(engine)
        clash_with_old = await refusal(
            engine,
            'INSERT INTO "scalemesh_pull_request_comment" ("repository", "pr_number", "state") '
            "VALUES ('acme/site', 7, 'writing')",
        )
        await engine.run_querystring(
            QueryString(
                'INSERT INTO "scalemesh_pull_request_comment" ("repository", "pr_number", '
                "\"state\") VALUES ('acme/blog', 1, 'writing')"
            )
        )
        clash_with_new = await refusal(
            engine,
            'INSERT INTO "scalemesh_pull_request_comment" ("repository", "pr_number", '
            "\"comment_id\") VALUES ('acme/blog', 1, 42)",
        )
        return clash_with_old, clash_with_new

    clash_with_old, clash_with_new = run(scenario)

    assert clash_with_old is not None
    assert database.is_unique_violation(clash_with_old)
    assert clash_with_new is not None
    assert database.is_unique_violation(clash_with_new)
