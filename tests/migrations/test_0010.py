"""Migration 0010 (custom domains), forward and backward, on a database at the one before it."""

from __future__ import annotations

from typing import Any

from piccolo.querystring import QueryString

from app.database import AnyEngine
from tests.support.migration_checks import (
    MIGRATION_0010,
    assert_rows_kept,
    at_migration_before,
    check_round_trip,
    columns,
    dump,
    indexes,
    is_not_null_violation,
    migrate_to,
    refusal,
    run,
    select,
    tables,
)

CLAIM = (
    'INSERT INTO "scalemesh_domain" ("name", "project", "token") '
    'VALUES ({}, (SELECT "id" FROM "scalemesh_project" WHERE "slug" = {}), {})'
)
NEW_PROJECT = (
    'INSERT INTO "scalemesh_project" ("slug", "name", "owner", "git_url") '
    'SELECT {}, {}, "owner", "git_url" FROM "scalemesh_project" WHERE "slug" = {}'
)


async def _run(engine: AnyEngine, sql: str, *args: object) -> None:
    await engine.run_querystring(QueryString(sql, *args))


def test_forward_adds_the_domain_table_with_its_rules(engine: AnyEngine) -> None:
    async def scenario() -> dict[str, Any]:
        await at_migration_before(engine, MIGRATION_0010)
        before = await dump(engine)
        applied = await migrate_to(engine, MIGRATION_0010)
        await _run(engine, NEW_PROJECT, "gone", "Gone", "site")
        await _run(engine, CLAIM, "www.example.com", "site", "t")
        await _run(engine, CLAIM, "docs.example.org", "docs", "u")
        await _run(engine, CLAIM, "gone.example.net", "gone", "v")
        seen: dict[str, Any] = {
            "before": before,
            "applied": applied,
            "tables": set(await tables(engine)),
            "columns": await columns(engine, "scalemesh_domain"),
            "indexes": str(await indexes(engine, "scalemesh_domain")),
            "stored": await select(
                engine,
                'SELECT "name", "routing", "check_detail", "check_attempts", "verified_at", '
                '"next_check_at", "git_branch", "redirect_to" FROM "scalemesh_domain" '
                'ORDER BY "name"',
            ),
            "taken": await refusal(engine, CLAIM, "www.example.com", "docs", "w"),
            "no project": await refusal(
                engine,
                'INSERT INTO "scalemesh_domain" ("name", "token") VALUES ({}, {})',
                "x.example.com",
                "x",
            ),
        }
        # Deleting a project deletes its domains (SQLite enforces keys per connection).
        if engine.engine_type == "sqlite":
            await engine.run_ddl("PRAGMA foreign_keys = ON")
        await _run(engine, 'DELETE FROM "scalemesh_project" WHERE "slug" = {}', "gone")
        seen["left"] = await select(engine, 'SELECT "name" FROM "scalemesh_domain" ORDER BY "name"')
        seen["after"] = await dump(engine)
        return seen

    seen = run(scenario)

    assert seen["applied"] == [MIGRATION_0010]
    assert "scalemesh_domain" in seen["tables"]
    assert list(seen["columns"]) == [
        "id",
        "name",
        "project",
        "git_branch",
        "redirect_to",
        "token",
        "verified_at",
        "routing",
        "check_code",
        "check_detail",
        "checked_at",
        "next_check_at",
        "check_attempts",
        "created_at",
        "updated_at",
    ]
    assert not seen["columns"]["project"][1]  # NOT NULL
    assert "scalemesh_domain_project" in seen["indexes"]
    assert "scalemesh_domain_next_check_at" in seen["indexes"]
    pending = {
        "routing": "unknown",
        "check_detail": "",
        "check_attempts": 0,
        "verified_at": None,
        "next_check_at": None,
        "git_branch": None,
        "redirect_to": None,
    }
    assert seen["stored"] == [
        {"name": "docs.example.org", **pending},
        {"name": "gone.example.net", **pending},
        {"name": "www.example.com", **pending},
    ]
    assert seen["taken"] is not None  # one project per name, system-wide
    assert is_not_null_violation(seen["no project"])
    assert seen["left"] == [{"name": "docs.example.org"}, {"name": "www.example.com"}]
    assert_rows_kept(seen["before"], seen["after"])


def test_backward_restores_the_previous_schema_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0010)
