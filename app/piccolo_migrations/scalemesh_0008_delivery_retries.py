"""Webhook deliveries that are retried, dead-lettered, claimed, and recognised when replayed.

On `scalemesh_webhook_delivery`:
- `body_sha256` (unique, null for a row without its body): the same body under a new delivery
  id is a replay. Existing rows are backfilled from their stored payload; a body stored twice
  before this migration keeps its hash on the first row only, so the unique index holds.
- `attempts`, `next_attempt_at`, `last_error`: a handler that failed for now, and when to try
  again. Existing rows get 0 and null.
- `claimed_until`: the lease of the replica running it.
- `dead_at`: given up on (a permanent error, or too many attempts); an admin may retry it.

Raw SQL with columns declared as Piccolo declares them, as in 0004 to 0006, run by
`app.migration_steps`.
"""

import hashlib
from collections.abc import AsyncIterator
from typing import Any

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import Engine
from piccolo.querystring import QueryString

from app.migration_steps import Kind, Step, add_columns, drop_columns, raw_migration

ID = "2026-12-03T02:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "webhook delivery retries"

TABLE = '"scalemesh_webhook_delivery"'
NEW_COLUMNS = (
    ("body_sha256", "VARCHAR(64) DEFAULT null"),
    ("attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("next_attempt_at", "TIMESTAMPTZ DEFAULT null"),
    ("claimed_until", "TIMESTAMPTZ DEFAULT null"),
    ("last_error", "VARCHAR(255) DEFAULT null"),
    ("dead_at", "TIMESTAMPTZ DEFAULT null"),
)
UNIQUE_HASH = "scalemesh_webhook_delivery_body_sha256"
DEAD_INDEX = "scalemesh_webhook_delivery_dead_at"
BACKFILL_BATCH = 100
"""Stored bodies hashed at a time: each may be up to 25 MiB, and the table holds every delivery
ever received, more than a migration may read into memory at once."""


def _forwards_sql(kind: Kind) -> list[Step]:
    # The unique index comes after the backfill, which leaves each hash on one row only.
    return [
        *add_columns(TABLE, NEW_COLUMNS),
        _backfill,
        f'CREATE UNIQUE INDEX {UNIQUE_HASH} ON {TABLE} ("body_sha256")',
        f'CREATE INDEX {DEAD_INDEX} ON {TABLE} ("dead_at")',
    ]


def _backwards_sql(kind: Kind) -> list[Step]:
    # SQLite refuses to drop an indexed column: the indexes go first.
    return [
        f"DROP INDEX {UNIQUE_HASH}",
        f"DROP INDEX {DEAD_INDEX}",
        *drop_columns(TABLE, (name for name, _ in NEW_COLUMNS)),
    ]


async def _stored_bodies(engine: Engine) -> AsyncIterator[dict[str, Any]]:
    """Each row with a body, oldest first, read `BACKFILL_BATCH` at a time."""
    after = 0
    while True:
        rows = await engine.run_querystring(
            QueryString(
                f'SELECT "id", "payload" FROM {TABLE} '
                f'WHERE "payload" <> \'\' AND "id" > {{}} ORDER BY "id" LIMIT {BACKFILL_BATCH}',
                after,
            )
        )
        for row in rows:
            yield row
        if len(rows) < BACKFILL_BATCH:
            return
        after = rows[-1]["id"]


async def _backfill(engine: Engine) -> None:
    """Hash each stored body; a body seen already (a replay stored before) keeps null."""
    seen: set[str] = set()
    async for row in _stored_bodies(engine):
        digest = hashlib.sha256(str(row["payload"]).encode("utf-8")).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        await engine.run_querystring(
            QueryString(
                f'UPDATE {TABLE} SET "body_sha256" = {{}} WHERE "id" = {{}}',
                digest,
                row["id"],
            )
        )


async def forwards() -> MigrationManager:
    return raw_migration(ID, DESCRIPTION, _forwards_sql, _backwards_sql)
