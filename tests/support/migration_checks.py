"""What migration 0004 must leave behind, how the migration tests read a database's schema and
rows, and the checks every migration after 0005 passes (its rows kept, undone and done again)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg
from piccolo.apps.migrations.commands.backwards import run_backwards
from piccolo.apps.migrations.commands.forwards import run_forwards
from piccolo.querystring import QueryString

from app import database
from app.database import AnyEngine
from tests.support.migration_fixture import DEPLOYMENTS, MIGRATION_0003, deployment_id
from tests.support.migration_snapshots import reach

T = TypeVar("T")


MIGRATION_0004 = "2026-12-02T00:00:00:000000"
MIGRATION_0005 = "2026-12-02T10:00:00:000000"
MIGRATION_0006 = "2026-12-02T15:00:00:000000"
MIGRATION_0007 = "2026-12-03T01:00:00:000000"
MIGRATION_0008 = "2026-12-03T02:00:00:000000"
MIGRATION_0009 = "2026-12-03T03:00:00:000000"
MIGRATION_0010 = "2026-12-03T04:00:00:000000"
MIGRATION_0011 = "2026-12-03T05:00:00:000000"
MIGRATION_0012 = "2026-12-03T06:00:00:000000"
MIGRATION_0013 = "2026-12-03T07:00:00:000000"
MIGRATION_0014 = "2026-12-03T08:00:00:000000"
MIGRATION_0015 = "2026-12-03T09:00:00:000000"
MIGRATION_0016 = "2026-12-03T10:00:00:000000"
MIGRATION_0017 = "2026-12-03T11:00:00:000000"
AFTER_0004 = [
    MIGRATION_0005,
    MIGRATION_0006,
    MIGRATION_0007,
    MIGRATION_0008,
    MIGRATION_0009,
    MIGRATION_0010,
    MIGRATION_0011,
    MIGRATION_0012,
    MIGRATION_0013,
    MIGRATION_0014,
    MIGRATION_0015,
    MIGRATION_0016,
    MIGRATION_0017,
]
"""The migrations that come after 0004, in order."""


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


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def call() -> T:
        return await scenario()

    return asyncio.run(call())


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
    async with engine.transaction():  # one connection for every query (see `schema`)
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
    # Some 50 queries on one connection: outside a transaction, Piccolo's engine opens one per
    # query, which took ~2.5 s of each PostgreSQL `schema` on a loaded machine.
    async with engine.transaction():
        for table in await tables(engine):
            described[table] = {
                "columns": list((await columns(engine, table)).items()),
                "indexes": await indexes(engine, table),
                "constraints": await constraints(engine, table),
            }
    return described


async def indexes(engine: AnyEngine, table: str) -> list[Any]:
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


async def constraints(engine: AnyEngine, table: str) -> list[Any]:
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


async def migrate_to_0004(engine: AnyEngine) -> list[str]:
    """Apply the migrations up to 0004, no further (later ones have their own tests); return
    the ids applied now."""
    return await migrate_to(engine, MIGRATION_0004)


async def migrate_to(engine: AnyEngine, migration_id: str) -> list[str]:
    """Apply the migrations up to `migration_id`, no further; return the ids applied now."""
    database.bind(engine)
    before = set(await database.pending_migrations(engine))
    result = await run_forwards("scalemesh", migration_id=migration_id)
    assert result.success, result.message
    return sorted(before - set(await database.pending_migrations(engine)))


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


async def at_migration_before(engine: AnyEngine, migration_id: str) -> None:
    """The fixture's database, migrated up to the migration just before `migration_id` (for
    0004: as `build` leaves it), in the empty database of an `engine` fixture. Restored from
    this process's snapshots (`tests.support.migration_snapshots`) where it can be."""
    ordered = [MIGRATION_0003, MIGRATION_0004, *AFTER_0004]
    await reach(engine, ordered[: ordered.index(migration_id)])


def assert_rows_kept(before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Any]) -> None:
    """Every row of `before` (a `dump`) is still in `after`, each of its columns unchanged."""
    for table, rows in before.items():
        for key, row in rows.items():
            assert {name: after[table][key][name] for name in row} == row


def check_forward(
    engine: AnyEngine, migration_id: str, probe: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """`migration_id` applied to the fixture's database at the one before it, then `probe` (its
    reads and writes of what the migration added): what `probe` found. Checked here: that
    migration alone ran, and every row there before is still there, each column unchanged."""

    async def scenario() -> dict[str, Any]:
        await at_migration_before(engine, migration_id)
        before = await dump(engine)
        applied = await migrate_to(engine, migration_id)
        found = await probe()
        return {"before": before, "applied": applied, "after": await dump(engine), **found}

    seen = run(scenario)
    assert seen["applied"] == [migration_id]
    assert_rows_kept(seen["before"], seen["after"])
    return seen


def check_round_trip(
    engine: AnyEngine,
    migration_id: str,
    prepare: Callable[[AnyEngine], Awaitable[None]] | None = None,
) -> None:
    """Applied, undone and applied again, `migration_id` leaves the schema and rows `prepare`
    made (by default `at_migration_before`) as they were, and its own schema as it was."""

    async def scenario() -> dict[str, Any]:
        if prepare is None:
            await at_migration_before(engine, migration_id)
        else:
            await prepare(engine)
        seen: dict[str, Any] = {
            "schema before": await schema(engine),
            "rows before": await dump(engine),
        }
        await migrate_to(engine, migration_id)
        seen["schema after"] = await schema(engine)
        database.bind(engine)
        result = await run_backwards("scalemesh", migration_id=migration_id, auto_agree=True)
        assert result.success, result.message
        seen["schema back"], seen["rows back"] = await schema(engine), await dump(engine)
        seen["applied again"] = await migrate_to(engine, migration_id)
        seen["schema again"] = await schema(engine)
        return seen

    seen = run(scenario)

    assert seen["schema back"] == seen["schema before"]
    assert seen["rows back"] == seen["rows before"]
    assert seen["applied again"] == [migration_id]
    assert seen["schema again"] == seen["schema after"]
