"""Migration 0008 (webhook delivery retries), forward and backward, over stored deliveries."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from piccolo.querystring import QueryString

from app.database import AnyEngine
from app.piccolo_migrations import scalemesh_0008_delivery_retries as migration
from tests.support.migration_checks import (
    MIGRATION_0008,
    assert_rows_kept,
    at_migration_before,
    check_round_trip,
    columns,
    dump,
    migrate_to,
    refusal,
    run,
    select,
)

TABLE = "scalemesh_webhook_delivery"
BODY = '{"ref": "refs/heads/main", "after": "' + "a" * 40 + '"}'
OTHER = '{"ref": "refs/heads/main", "after": "' + "b" * 40 + '"}'
STORED = [
    # delivery id, payload (empty: an event no handler takes), processed
    ("first", BODY, True),
    ("replayed", BODY, True),  # the same body under a new id, stored before 0008
    ("other", OTHER, False),
    ("ignored", "", True),
]


async def before_0008(engine: AnyEngine) -> None:
    """The database at the migration before 0008, with deliveries stored as its code did."""
    await at_migration_before(engine, MIGRATION_0008)
    for delivery_id, body, processed in STORED:
        await engine.run_querystring(
            QueryString(
                f'INSERT INTO "{TABLE}" ("delivery_id", "event", "payload", "received_at", '  # noqa: S608
                '"processed_at") VALUES ({}, {}, {}, current_timestamp, '
                + ("current_timestamp" if processed else "null")
                + ")",
                delivery_id,
                "push" if body else "star",
                body,
            )
        )


async def deliveries(engine: AnyEngine) -> dict[str, dict[str, Any]]:
    rows = await select(engine, f'SELECT * FROM "{TABLE}"')  # noqa: S608
    return {row["delivery_id"]: row for row in rows}


def test_forward_hashes_each_stored_body_once_and_adds_the_retry_columns(
    engine: AnyEngine,
) -> None:
    async def scenario() -> dict[str, Any]:
        await before_0008(engine)
        before = await dump(engine)
        applied = await migrate_to(engine, MIGRATION_0008)
        duplicate = await refusal(
            engine,
            f'INSERT INTO "{TABLE}" ("delivery_id", "event", "payload", "received_at", '  # noqa: S608
            '"body_sha256") VALUES ({}, {}, {}, current_timestamp, {})',
            "again",
            "push",
            BODY,
            hashlib.sha256(BODY.encode()).hexdigest(),
        )
        return {
            "before": before,
            "after": await dump(engine),
            "applied": applied,
            "rows": await deliveries(engine),
            "columns": await columns(engine, TABLE),
            "duplicate": duplicate,
        }

    seen = run(scenario)

    assert seen["applied"] == [MIGRATION_0008]
    rows = seen["rows"]
    assert rows["first"]["body_sha256"] == hashlib.sha256(BODY.encode()).hexdigest()
    assert rows["replayed"]["body_sha256"] is None  # one hash per body: the unique index holds
    assert rows["other"]["body_sha256"] == hashlib.sha256(OTHER.encode()).hexdigest()
    assert rows["ignored"]["body_sha256"] is None
    for row in rows.values():
        assert row["attempts"] == 0
        assert (row["next_attempt_at"], row["claimed_until"]) == (None, None)
        assert (row["last_error"], row["dead_at"]) == (None, None)
    assert {
        "body_sha256",
        "attempts",
        "next_attempt_at",
        "claimed_until",
        "last_error",
        "dead_at",
    } <= set(seen["columns"])
    assert seen["duplicate"] is not None  # a body stored once, under any delivery id
    assert_rows_kept(seen["before"], seen["after"])


def test_forward_reads_the_stored_bodies_a_batch_at_a_time(
    engine: AnyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migration, "BACKFILL_BATCH", 1)  # each row a batch of its own

    async def scenario() -> dict[str, dict[str, Any]]:
        await before_0008(engine)
        await migrate_to(engine, MIGRATION_0008)
        return await deliveries(engine)

    rows = run(scenario)

    assert rows["first"]["body_sha256"] == hashlib.sha256(BODY.encode()).hexdigest()
    assert rows["replayed"]["body_sha256"] is None  # seen in an earlier batch
    assert rows["other"]["body_sha256"] == hashlib.sha256(OTHER.encode()).hexdigest()
    assert rows["ignored"]["body_sha256"] is None


def test_backward_restores_the_schema_and_rows_and_forward_runs_again(engine: AnyEngine) -> None:
    check_round_trip(engine, MIGRATION_0008, before_0008)
