"""Migration 0004 on a database filled by the previous schema's code: forward, backward, forward.

Each test builds its own database at 0003 (`tests.migration_fixture`) on SQLite and on
PostgreSQL, and reads back what the engine stored: rows, columns, indexes and constraints.
"""

from __future__ import annotations

import asyncio
import copy
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from piccolo.apps.migrations.commands.backwards import run_backwards
from piccolo.querystring import QueryString

from app import database
from app.database import AnyEngine
from app.settings import Settings
from tests.conftest import TEST_SECRET_KEY, PostgresDatabases
from tests.migration_fixture import DEPLOYMENTS, NOW, build, deployment_id

T = TypeVar("T")

MIGRATION_0004 = "2026-12-02T00:00:00:000000"
NEW_DEPLOYMENT_COLUMNS = (
    "error_code",
    "report_pending",
    "reported_phase",
    "report_claim",
    "report_claimed_until",
)
CLAIMED = ("building-claimed", "cancelled-branch-deleted")
"""The fixture's deployments a replica of the previous code was reporting (`c:…`)."""

REPORTING = {
    # label: (report_pending, reported_phase)
    "queued-unreported": (True, None),
    "queued-reported": (False, "queued"),
    "building-claimed": (True, None),
    "building-reported": (False, "building"),
    "ready-reported": (False, "ready"),
    "ready-retired": (False, "inactive"),
    "ready-no-installation": (False, "unreported"),
    "ready-pending": (True, None),
    "cancelled-fork": (False, "cancelled"),
    "cancelled-superseded": (True, None),
    "cancelled-branch-deleted": (True, None),
    "cancelled-by-user": (False, "cancelled"),
    "cancelled-without-error": (False, "cancelled"),
    "failed-timeout": (False, "failed"),
    "failed-no-output": (False, "failed"),
    "failed-start": (False, "failed"),
    "failed-env-vars": (True, None),
    "failed-clone-token": (False, "failed"),
    "failed-restart": (False, "failed"),
    "failed-build": (False, "failed"),
    "failed-without-error": (False, "failed"),
    "failed-build-mentions-timeout": (False, "failed"),
    "failed-build-timeout-capitalised": (False, "failed"),
}

ERROR_CODES = {
    "queued-unreported": None,
    "queued-reported": None,
    "building-claimed": None,
    "building-reported": None,
    "ready-reported": None,
    "ready-retired": None,
    "ready-no-installation": None,
    "ready-pending": None,
    "cancelled-fork": "fork_refused",
    "cancelled-superseded": "superseded",
    "cancelled-branch-deleted": "branch_deleted",
    "cancelled-by-user": "cancelled",
    "cancelled-without-error": "cancelled",
    "failed-timeout": "timeout",
    "failed-no-output": "no_output",
    "failed-start": "start_failed",
    "failed-env-vars": "env_unopenable",
    "failed-clone-token": "clone_token_unavailable",
    "failed-restart": "interrupted",
    "failed-build": "build_failed",
    "failed-without-error": "build_failed",
    "failed-build-mentions-timeout": "build_failed",
    "failed-build-timeout-capitalised": "build_failed",
}

Column = tuple[str, bool, str | None]
"""A column as the engine describes it: declared type, whether it takes NULL, default."""

COLUMNS_AFTER: dict[str, dict[tuple[str, str], Column]] = {
    "sqlite": {
        ("scalemesh_deployment", "error_code"): ("VARCHAR(40)", True, "null"),
        ("scalemesh_deployment", "report_pending"): ("BOOLEAN", False, "true"),
        ("scalemesh_deployment", "reported_phase"): ("VARCHAR(20)", True, "null"),
        ("scalemesh_deployment", "report_claim"): ("VARCHAR(32)", True, "null"),
        ("scalemesh_deployment", "report_claimed_until"): ("TIMESTAMPTZ", True, "null"),
        ("scalemesh_pull_request_comment", "comment_id"): ("INTEGER", True, "null"),
        ("scalemesh_pull_request_comment", "state"): ("VARCHAR(20)", False, "'written'"),
    },
    "postgres": {
        ("scalemesh_deployment", "error_code"): (
            "character varying(40)",
            True,
            "NULL::character varying",
        ),
        ("scalemesh_deployment", "report_pending"): ("boolean", False, "true"),
        ("scalemesh_deployment", "reported_phase"): (
            "character varying(20)",
            True,
            "NULL::character varying",
        ),
        ("scalemesh_deployment", "report_claim"): (
            "character varying(32)",
            True,
            "NULL::character varying",
        ),
        ("scalemesh_deployment", "report_claimed_until"): (
            "timestamp with time zone",
            True,
            None,
        ),
        ("scalemesh_pull_request_comment", "comment_id"): ("bigint", True, None),
        ("scalemesh_pull_request_comment", "state"): (
            "character varying(20)",
            False,
            "'written'::character varying",
        ),
    },
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AnyEngine:
    """An engine on an empty database of its own."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scalemesh.sqlite3'}"
    else:
        databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
        url = databases.new()
    settings = Settings.from_env(
        {"SCALEMESH_DATABASE_URL": url, "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY}
    )
    return database.make_engine(settings.database)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def call() -> T:
        return await scenario()

    return asyncio.run(call())


# reading what the engine stored ---------------------------------------------------------------


async def select(engine: AnyEngine, sql: str, *args: object) -> list[dict[str, Any]]:
    return [dict(row) for row in await engine.run_querystring(QueryString(sql, *args))]


async def deployments(engine: AnyEngine) -> dict[str, dict[str, Any]]:
    """The fixture's deployment rows, by label."""
    labels = {deployment_id(deployment.label): deployment.label for deployment in DEPLOYMENTS}
    rows = await select(engine, 'SELECT * FROM "scalemesh_deployment"')
    return {labels[uuid.UUID(str(row["id"]))]: row for row in rows}


async def comments(engine: AnyEngine) -> dict[tuple[str, int], dict[str, Any]]:
    rows = await select(engine, 'SELECT * FROM "scalemesh_pull_request_comment"')
    return {(row["repository"], row["pr_number"]): row for row in rows}


async def tables(engine: AnyEngine) -> list[str]:
    if engine.engine_type == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    else:
        sql = (
            "SELECT table_name AS name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
        )
    return [row["name"] for row in await select(engine, sql)]


async def dump(engine: AnyEngine) -> dict[str, dict[str, dict[str, Any]]]:
    """Every row of every table but Piccolo's own, by table and id."""
    return {
        table: {
            str(row["id"]): row
            for row in await select(engine, f'SELECT * FROM "{table}"')  # noqa: S608
        }
        for table in await tables(engine)
        if table != "migration"
    }


async def columns(engine: AnyEngine, table: str) -> dict[str, Column]:
    """Each column of `table`, in order."""
    if engine.engine_type == "sqlite":
        info = await select(engine, f'PRAGMA table_info("{table}")')
        return {row["name"]: (row["type"], not row["notnull"], row["dflt_value"]) for row in info}
    info = await select(
        engine,
        "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = {} ORDER BY ordinal_position",
        table,
    )
    return {
        row["column_name"]: (
            row["data_type"]
            + (f"({row['character_maximum_length']})" if row["character_maximum_length"] else ""),
            row["is_nullable"] == "YES",
            row["column_default"],
        )
        for row in info
    }


async def schema(engine: AnyEngine) -> dict[str, dict[str, list[Any]]]:
    """Every table's columns, indexes and constraints, as the engine describes them."""
    described = {}
    for table in await tables(engine):
        described[table] = {
            "columns": list((await columns(engine, table)).items()),
            "indexes": await _indexes(engine, table),
            "constraints": await _constraints(engine, table),
        }
    return described


async def _indexes(engine: AnyEngine, table: str) -> list[Any]:
    if engine.engine_type != "sqlite":
        rows = await select(
            engine,
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename = {} ORDER BY indexname",
            table,
        )
        return [(row["indexname"], row["indexdef"]) for row in rows]
    indexes = []
    for index in await select(engine, f'PRAGMA index_list("{table}")'):
        keys = await select(engine, f'PRAGMA index_info("{index["name"]}")')
        indexes.append(
            (index["name"], index["unique"], index["origin"], [key["name"] for key in keys])
        )
    return sorted(indexes)


async def _constraints(engine: AnyEngine, table: str) -> list[Any]:
    if engine.engine_type != "sqlite":
        rows = await select(
            engine,
            "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
            "WHERE conrelid = to_regclass({}) ORDER BY conname",
            f'"{table}"',
        )
        return [(row["conname"], row["definition"]) for row in rows]
    keys = await select(engine, f'PRAGMA foreign_key_list("{table}")')
    return sorted(
        (key["from"], key["table"], key["to"], key["on_update"], key["on_delete"]) for key in keys
    )


# migrating --------------------------------------------------------------------------------------


async def backward(engine: AnyEngine) -> None:
    database.bind(engine)
    result = await run_backwards("scalemesh", migration_id=MIGRATION_0004, auto_agree=True)
    assert result.success, result.message


async def refusal(engine: AnyEngine, sql: str, *args: object) -> BaseException | None:
    try:
        await engine.run_querystring(QueryString(sql, *args))
    except (sqlite3.Error, asyncpg.PostgresError) as exc:
        return exc
    return None


def is_not_null_violation(exc: BaseException | None) -> bool:
    if isinstance(exc, asyncpg.exceptions.NotNullViolationError):
        return True
    return isinstance(exc, sqlite3.IntegrityError) and "NOT NULL" in str(exc)


# forward ------------------------------------------------------------------------------------------


def test_the_fixture_stops_at_0003_and_forward_applies_0004_alone(engine: AnyEngine) -> None:
    async def scenario() -> tuple[list[str], list[str], list[str]]:
        await build(engine)
        pending = await database.pending_migrations(engine)
        applied = await database.migrate(engine)
        return pending, applied, await database.pending_migrations(engine)

    pending, applied, left = run(scenario)

    assert pending == [MIGRATION_0004]
    assert applied == [MIGRATION_0004]
    assert left == []


def test_github_reported_becomes_report_pending_and_reported_phase(engine: AnyEngine) -> None:
    async def scenario() -> dict[str, dict[str, Any]]:
        await build(engine)
        await database.migrate(engine)
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
        await build(engine)
        await database.migrate(engine)
        return await deployments(engine)

    rows = run(scenario)

    assert {label: row["error_code"] for label, row in rows.items()} == ERROR_CODES


def test_every_other_stored_value_is_kept(engine: AnyEngine) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        await build(engine)
        before = await dump(engine)
        await database.migrate(engine)
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
        await build(engine)
        before = await comments(engine)
        await database.migrate(engine)
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
        await build(engine)
        await database.migrate(engine)
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
        await build(engine)
        await database.migrate(engine)
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
        await build(engine)
        await database.migrate(engine)
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
        await build(engine)
        await database.migrate(engine)
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


# backward and forward again ---------------------------------------------------------------------


def test_backward_restores_the_previous_schema_and_rows_and_forward_runs_again(
    engine: AnyEngine,
) -> None:
    async def scenario() -> dict[str, Any]:
        await build(engine)
        seen: dict[str, Any] = {
            "schema 0003": await schema(engine),
            "rows 0003": await dump(engine),
        }
        await database.migrate(engine)
        seen["schema 0004"], seen["rows 0004"] = await schema(engine), await dump(engine)
        await backward(engine)
        seen["schema back"], seen["rows back"] = await schema(engine), await dump(engine)
        seen["pending back"] = await database.pending_migrations(engine)
        seen["applied again"] = await database.migrate(engine)
        seen["schema again"], seen["rows again"] = await schema(engine), await dump(engine)
        return seen

    seen = run(scenario)

    assert seen["schema back"] == seen["schema 0003"]
    expected = copy.deepcopy(seen["rows 0003"])
    for label in CLAIMED:  # a claim is lost: GitHub is told again
        expected["scalemesh_deployment"][str(deployment_id(label))]["github_reported"] = None
    assert seen["rows back"] == expected
    assert seen["pending back"] == [MIGRATION_0004]
    assert seen["applied again"] == [MIGRATION_0004]
    assert seen["schema again"] == seen["schema 0004"]
    assert seen["rows again"] == seen["rows 0004"]


def test_backward_translates_what_the_new_columns_say(engine: AnyEngine) -> None:
    async def scenario() -> tuple[dict[str, dict[str, Any]], dict[tuple[str, int], Any]]:
        await build(engine)
        await database.migrate(engine)
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
        await build(engine)
        # Someone's reporting view: both engines refuse to drop a column a view reads, so the
        # migration fails after it has added and filled the new columns. (Unquoted: SQLite would
        # take a double-quoted name that no longer resolves for a string, and drop the column.)
        await engine.run_ddl(
            "CREATE VIEW reported AS SELECT id, github_reported FROM scalemesh_deployment"
        )
        seen: dict[str, Any] = {"schema": await schema(engine), "rows": await dump(engine)}
        try:
            await database.migrate(engine)
        except (sqlite3.Error, asyncpg.PostgresError) as exc:
            seen["error"] = exc
        seen["schema after"], seen["rows after"] = await schema(engine), await dump(engine)
        seen["pending after"] = await database.pending_migrations(engine)
        return seen

    seen = run(scenario)

    assert "github_reported" in str(seen.get("error"))
    assert seen["schema after"] == seen["schema"]
    assert seen["rows after"] == seen["rows"]
    assert seen["pending after"] == [MIGRATION_0004]
