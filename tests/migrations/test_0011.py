"""Migration 0011 (env var scopes), forward and backward, on a database at the one before it."""

from __future__ import annotations

from typing import Any

from piccolo.apps.migrations.commands.backwards import run_backwards
from piccolo.querystring import QueryString

from app import database
from app.database import AnyEngine
from app.projects.envvars import Sealer
from app.settings import Settings
from tests.support.api import TEST_SECRET_KEY
from tests.support.migration_checks import (
    MIGRATION_0011,
    assert_rows_kept,
    at_migration_before,
    check_round_trip,
    columns,
    dump,
    indexes,
    migrate_to,
    refusal,
    run,
    select,
)

SEALER = Sealer(Settings.from_env({"SCALEMESH_SECRET_KEY": TEST_SECRET_KEY}).require_secret_keys())
OLD_VAR = (
    'INSERT INTO "scalemesh_env_var" ("project", "name", "value_sealed") '
    'VALUES ((SELECT "id" FROM "scalemesh_project" WHERE "slug" = {}), {}, {})'
)
SCOPED_VAR = (
    'INSERT INTO "scalemesh_env_var" ("project", "name", "value_sealed", "scope", "git_branch") '
    'VALUES ((SELECT "id" FROM "scalemesh_project" WHERE "slug" = {}), {}, {}, {}, {})'
)
VARS = {("site", "API_URL"): "https://api.example.com", ("site", "TOKEN"): "s3cr3t",
        ("docs", "API_URL"): "https://docs-api.example.com"}  # fmt: skip


async def _run(engine: AnyEngine, sql: str, *args: object) -> None:
    await engine.run_querystring(QueryString(sql, *args))


async def _project_ids(engine: AnyEngine) -> dict[str, int]:
    rows = await select(engine, 'SELECT "id", "slug" FROM "scalemesh_project"')
    return {row["slug"]: int(row["id"]) for row in rows}


async def _with_old_vars(engine: AnyEngine) -> None:
    """The fixture's database before 0011, with env vars sealed as the previous code sealed."""
    await at_migration_before(engine, MIGRATION_0011)
    ids = await _project_ids(engine)
    for (slug, name), value in VARS.items():
        await _run(engine, OLD_VAR, slug, name, SEALER.seal(ids[slug], name, value))


async def _opened(engine: AnyEngine) -> list[tuple[str, str, str, str, str]]:
    """(slug, name, scope, branch, value) of every row, each value opened with the key."""
    ids = await _project_ids(engine)
    slugs = {project_id: slug for slug, project_id in ids.items()}
    rows = await select(
        engine,
        'SELECT "project", "name", "scope", "git_branch", "value_sealed" FROM "scalemesh_env_var"',
    )
    return sorted(
        (
            slugs[int(row["project"])],
            row["name"],
            row["scope"],
            row["git_branch"],
            SEALER.open(int(row["project"]), row["name"], bytes(row["value_sealed"])),
        )
        for row in rows
    )


def test_forward_makes_every_variable_production_and_preview(engine: AnyEngine) -> None:
    async def scenario() -> dict[str, Any]:
        await _with_old_vars(engine)
        seen: dict[str, Any] = {"before": await dump(engine)}
        seen["applied"] = await migrate_to(engine, MIGRATION_0011)
        seen["columns"] = await columns(engine, "scalemesh_env_var")
        seen["indexes"] = str(await indexes(engine, "scalemesh_env_var"))
        seen["opened"] = await _opened(engine)
        site = SEALER.seal((await _project_ids(engine))["site"], "API_URL", "x")
        seen["same scope"] = await refusal(
            engine, SCOPED_VAR, "site", "API_URL", site, "preview", ""
        )
        seen["bad scope"] = await refusal(
            engine, SCOPED_VAR, "site", "API_URL", site, "staging", ""
        )
        seen["a branch"] = await refusal(
            engine, SCOPED_VAR, "site", "API_URL", site, "branch", "staging"
        )
        seen["another branch"] = await refusal(
            engine, SCOPED_VAR, "site", "API_URL", site, "branch", "next"
        )
        seen["that branch again"] = await refusal(
            engine, SCOPED_VAR, "site", "API_URL", site, "branch", "staging"
        )
        seen["after"] = await dump(engine)
        return seen

    seen = run(scenario)

    assert seen["applied"] == [MIGRATION_0011]
    assert list(seen["columns"])[-2:] == ["scope", "git_branch"]
    assert not seen["columns"]["scope"][1]  # NOT NULL
    assert not seen["columns"]["git_branch"][1]
    assert "scalemesh_env_var_project_name_scope" in seen["indexes"]
    assert "'scalemesh_env_var_project_name'" not in seen["indexes"]
    # Every old value opens in both of its new scopes, with no key used by the migration.
    assert seen["opened"] == [
        ("docs", "API_URL", "preview", "", "https://docs-api.example.com"),
        ("docs", "API_URL", "production", "", "https://docs-api.example.com"),
        ("site", "API_URL", "preview", "", "https://api.example.com"),
        ("site", "API_URL", "production", "", "https://api.example.com"),
        ("site", "TOKEN", "preview", "", "s3cr3t"),
        ("site", "TOKEN", "production", "", "s3cr3t"),
    ]
    assert seen["same scope"] is not None  # one value per (name, scope)
    assert seen["bad scope"] is not None  # the CHECK
    assert seen["a branch"] is None
    assert seen["another branch"] is None
    assert seen["that branch again"] is not None
    assert_rows_kept(seen["before"], seen["after"])


def test_the_old_rows_are_kept_as_production(engine: AnyEngine) -> None:
    async def scenario() -> tuple[Any, Any]:
        await _with_old_vars(engine)
        before = await dump(engine)
        await migrate_to(engine, MIGRATION_0011)
        return before, await dump(engine)

    before, after = run(scenario)

    assert_rows_kept(before, after)
    kept = before["scalemesh_env_var"]
    assert {after["scalemesh_env_var"][key]["scope"] for key in kept} == {"production"}
    assert len(after["scalemesh_env_var"]) == 2 * len(kept)


def test_backward_keeps_one_value_per_name_production_first(engine: AnyEngine) -> None:
    async def scenario() -> list[tuple[str, str, str]]:
        await _with_old_vars(engine)
        await migrate_to(engine, MIGRATION_0011)
        ids = await _project_ids(engine)
        site = ids["site"]
        await _run(
            engine,
            'UPDATE "scalemesh_env_var" SET "value_sealed" = {} '
            'WHERE "project" = {} AND "name" = {} AND "scope" = {}',
            SEALER.seal(site, "API_URL", "https://preview-api.example.com"),
            site,
            "API_URL",
            "preview",
        )
        for name, scope, branch, value in (
            ("PREVIEW_ONLY", "preview", "", "p"),
            ("PREVIEW_ONLY", "branch", "a", "a"),
            ("BRANCHES", "branch", "b", "b"),
            ("BRANCHES", "branch", "a", "a"),
        ):
            await _run(
                engine, SCOPED_VAR, "site", name, SEALER.seal(site, name, value), scope, branch
            )
        database.bind(engine)
        result = await run_backwards("scalemesh", migration_id=MIGRATION_0011, auto_agree=True)
        assert result.success, result.message
        rows = await select(
            engine, 'SELECT "project", "name", "value_sealed" FROM "scalemesh_env_var"'
        )
        slugs = {project_id: slug for slug, project_id in ids.items()}
        return sorted(
            (
                slugs[int(row["project"])],
                row["name"],
                SEALER.open(int(row["project"]), row["name"], bytes(row["value_sealed"])),
            )
            for row in rows
        )

    assert run(scenario) == [
        ("docs", "API_URL", "https://docs-api.example.com"),
        ("site", "API_URL", "https://api.example.com"),
        ("site", "BRANCHES", "a"),
        ("site", "PREVIEW_ONLY", "p"),
        ("site", "TOKEN", "s3cr3t"),
    ]


def test_backward_restores_the_previous_schema_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0011, _with_old_vars)
