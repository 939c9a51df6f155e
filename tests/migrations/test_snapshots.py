"""`tests.support.migration_snapshots`: a database restored from a snapshot is the one `build`
and the migrations leave, so tests starting from one see what they would have built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app import database
from app.database import AnyEngine
from tests.support.migration_checks import (
    AFTER_0004,
    at_migration_before,
    dump,
    migrate_to,
    run,
    schema,
    select,
)
from tests.support.migration_fixture import build


async def _state(engine: AnyEngine) -> dict[str, Any]:
    return {
        "schema": await schema(engine),
        "rows": await dump(engine),
        # Piccolo's `ran_on` is when each ran: a snapshot's are older.
        "migrations": await select(
            engine, 'SELECT "id", "name", "app_name" FROM "migration" ORDER BY "id"'
        ),
        "pending": await database.pending_migrations(engine),
    }


def test_a_restored_database_is_the_one_build_and_the_migrations_leave(
    engine: AnyEngine, more_engines: Callable[[], AnyEngine]
) -> None:
    fresh, first = more_engines(), more_engines()
    *_, next_to_last, last = AFTER_0004  # the longest way, through every migration but the last

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        await build(fresh)
        await migrate_to(fresh, next_to_last)
        built = await _state(fresh)
        await at_migration_before(first, last)  # keeps its snapshots, if none yet
        await at_migration_before(engine, last)  # so this one is restored
        return built, await _state(engine)

    built, restored = run(scenario)

    assert [row["name"] for row in restored["migrations"]][-1] == next_to_last
    assert restored["pending"] == [last]
    assert restored == built
