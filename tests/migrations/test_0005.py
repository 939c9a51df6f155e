"""Migration 0005 (GitHub identity and access), forward and backward, on a database at 0004."""

from __future__ import annotations

from typing import Any

from piccolo.apps.migrations.commands.backwards import run_backwards
from piccolo.querystring import QueryString

from app import database
from app.database import AnyEngine
from tests.support.migration_checks import (
    MIGRATION_0005,
    at_migration_before,
    columns,
    dump,
    migrate_to,
    run,
    schema,
    select,
    tables,
)

NEW_TABLES = {"scalemesh_github_account", "scalemesh_oauth_state"}


async def at_0004(engine: AnyEngine) -> None:
    """The fixture at 0004, with the App installed on `acme/site` (private; stored in another
    spelling, as GitHub's names are case-insensitive) and `acme/public`, and a third project."""
    await at_migration_before(engine, MIGRATION_0005)
    for sql in (
        "INSERT INTO scalemesh_installation (installation_id, account_login, account_type, "
        "suspended, created_at, updated_at) VALUES (7, 'acme', 'Organization', false, "
        "current_timestamp, current_timestamp)",
        "INSERT INTO scalemesh_repository (github_id, full_name, clone_url, private, "
        "installation) VALUES (101, 'ACME/Site', 'https://github.com/ACME/Site.git', true, "
        "(SELECT id FROM scalemesh_installation))",
        "INSERT INTO scalemesh_repository (github_id, full_name, clone_url, private, "
        "installation) VALUES (102, 'acme/public', 'https://github.com/acme/public.git', false, "
        "(SELECT id FROM scalemesh_installation))",
        "INSERT INTO scalemesh_project (slug, name, owner, github_repository, git_url, "
        "production_branch, allow_fork_builds, created_at, updated_at) VALUES ('public', "
        "'Public', (SELECT max(id) FROM scalemesh_user), 'acme/public', "
        "'https://github.com/acme/public.git', 'main', false, current_timestamp, "
        "current_timestamp)",
    ):
        await engine.run_querystring(QueryString(sql))


def test_forward_makes_the_first_account_admin_and_protects_private_previews(
    engine: AnyEngine,
) -> None:
    async def scenario() -> dict[str, Any]:
        await at_0004(engine)
        before = await dump(engine)
        applied = await migrate_to(engine, MIGRATION_0005)
        users = await select(engine, 'SELECT email, is_admin FROM "scalemesh_user" ORDER BY id')
        projects = await select(
            engine,
            'SELECT slug, protection, github_repository_id, bypass_hash FROM "scalemesh_project"',
        )
        return {
            "before": before,
            "after": await dump(engine),
            "applied": applied,
            "users": users,
            "projects": {row["slug"]: row for row in projects},
            "tables": set(await tables(engine)),
            "token columns": await columns(engine, "scalemesh_api_token"),
            "failure columns": await columns(engine, "scalemesh_login_failure"),
        }

    seen = run(scenario)

    assert seen["applied"] == [MIGRATION_0005]
    assert [(row["email"], bool(row["is_admin"])) for row in seen["users"]] == [
        ("ada@example.com", True),
        ("grace@example.com", False),
    ]
    protection = {slug: row["protection"] for slug, row in seen["projects"].items()}
    assert protection == {"site": "previews", "docs": "none", "public": "none"}
    # Nobody with push access bound them: pushes stop building them until someone re-links.
    assert {row["github_repository_id"] for row in seen["projects"].values()} == {None}
    assert {row["bypass_hash"] for row in seen["projects"].values()} == {None}
    assert seen["tables"] >= NEW_TABLES
    assert "expires_at" in seen["token columns"]
    assert "client" in seen["failure columns"]
    # Nothing else changed: every old column of every old row keeps its value.
    for table, rows in seen["before"].items():
        for key, row in rows.items():
            assert {name: seen["after"][table][key][name] for name in row} == row


def test_backward_restores_0004_and_forward_runs_again(engine: AnyEngine) -> None:
    async def scenario() -> dict[str, Any]:
        await at_0004(engine)
        seen: dict[str, Any] = {
            "schema 0004": await schema(engine),
            "rows 0004": await dump(engine),
        }
        await migrate_to(engine, MIGRATION_0005)
        seen["schema 0005"] = await schema(engine)
        database.bind(engine)
        result = await run_backwards("scalemesh", migration_id=MIGRATION_0005, auto_agree=True)
        assert result.success, result.message
        seen["schema back"], seen["rows back"] = await schema(engine), await dump(engine)
        seen["applied again"] = await migrate_to(engine, MIGRATION_0005)
        seen["schema again"] = await schema(engine)
        return seen

    seen = run(scenario)

    assert seen["schema back"] == seen["schema 0004"]
    assert seen["rows back"] == seen["rows 0004"]
    assert seen["applied again"] == [MIGRATION_0005]
    assert seen["schema again"] == seen["schema 0005"]
