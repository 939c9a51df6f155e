"""Migration 0014 (production pinned by a rollback), forward and backward, on a database at the
one before it."""

from __future__ import annotations

from typing import Any

from app.database import AnyEngine
from app.tables import Project, User
from tests.support.migration_checks import (
    MIGRATION_0014,
    at_migration_before,
    check_forward,
    check_round_trip,
    columns,
    migrate_to,
    run,
    select,
)

NEW = (
    "production_pinned_to",
    "production_pinned_at",
    "production_pinned_by",
    "production_github_deployment_id",
)


def test_forward_leaves_every_project_unpinned(engine: AnyEngine) -> None:
    async def probe() -> dict[str, Any]:
        pins = await Project.select(*(getattr(Project, name) for name in NEW))
        return {
            "pins": pins,
            "columns": await columns(engine, "scalemesh_project"),
        }

    seen = check_forward(engine, MIGRATION_0014, probe)

    assert seen["pins"]
    assert all(set(row.values()) == {None} for row in seen["pins"])
    assert list(seen["columns"])[-4:] == list(NEW)
    assert all(seen["columns"][name][1] for name in NEW)  # each takes NULL


def test_a_deleted_account_leaves_the_pin_without_its_name(engine: AnyEngine) -> None:
    async def scenario() -> list[dict[str, Any]]:
        await at_migration_before(engine, MIGRATION_0014)
        await migrate_to(engine, MIGRATION_0014)
        owner = (await Project.select(Project.owner).first())["owner"]  # type: ignore[index]
        pinner = (await User.insert(User(email="pinner@example.com", password_hash="x")))[0]["id"]
        await Project.update(
            {
                Project.production_pinned_to: "00000000-0000-4000-8000-000000000001",
                Project.production_pinned_by: pinner,
            },
            force=True,
        )
        await User.delete().where(User.id == pinner)
        assert owner != pinner
        return await select(
            engine,
            'SELECT "production_pinned_to", "production_pinned_by" FROM "scalemesh_project"',
        )

    rows = run(scenario)

    assert rows
    assert all(row["production_pinned_by"] is None for row in rows)
    assert all(row["production_pinned_to"] is not None for row in rows)


def test_backward_restores_the_previous_schema_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0014)
