"""Explicit reporting columns instead of state encoded in strings, backfilled from the old ones.

`scalemesh_deployment.github_reported` held a phase, `unreported`, a replica's claim
(`c:<unix seconds><hex>`) or null; it becomes `report_pending` and `reported_phase`, with
`report_claim`/`report_claimed_until` for the reporter's claim (in-flight claims are not carried
over: those rows are simply pending again). `error_code` names why a deployment did not go live,
read off the error texts the previous code wrote. `scalemesh_pull_request_comment.comment_id = 0`
("being written") becomes `state = 'writing'` with a null `comment_id`.

Every step is raw SQL: Piccolo runs a migration's raw steps before its column steps, and the
backfill needs the old and the new columns at once. SQLite cannot drop a column's NOT NULL, so
there the comment table is rebuilt (https://www.sqlite.org/lang_altertable.html#otheralter);
nothing references that table, so the rebuild needs no change to foreign key enforcement.
"""

import sqlite3

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "typed reporting state"

DEPLOYMENT = '"scalemesh_deployment"'
COMMENT = '"scalemesh_pull_request_comment"'
COMMENT_REBUILT = '"scalemesh_pull_request_comment_0004"'
COMMENT_INDEX = (
    'CREATE UNIQUE INDEX IF NOT EXISTS "scalemesh_pull_request_comment_repository_pr" '
    f'ON {COMMENT} ("repository", "pr_number")'
)
"""0002's index; SQLite drops it with the table it rebuilds."""

REPORT_COLUMNS = {
    "error_code": "VARCHAR(40) DEFAULT null",
    "report_pending": "BOOLEAN NOT NULL DEFAULT true",
    "reported_phase": "VARCHAR(20) DEFAULT null",
    "report_claim": "VARCHAR(32) DEFAULT null",
    "report_claimed_until": "TIMESTAMPTZ DEFAULT null",
}
"""Declared as Piccolo declares them: its SQLite engine converts values by declared type."""
GITHUB_REPORTED = "VARCHAR(20) DEFAULT null"

# SQLite's column definitions as Piccolo wrote them in 0001 (BigInt is INTEGER there).
COMMENT_COLUMNS_BEFORE = (
    '"id" INTEGER PRIMARY KEY NOT NULL, "repository" VARCHAR(140) NOT NULL DEFAULT \'\', '
    '"pr_number" INTEGER NOT NULL DEFAULT 0, "comment_id" INTEGER NOT NULL DEFAULT 0, '
    '"updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp'
)
COMMENT_COLUMNS_AFTER = (
    '"id" INTEGER PRIMARY KEY NOT NULL, "repository" VARCHAR(140) NOT NULL DEFAULT \'\', '
    '"pr_number" INTEGER NOT NULL DEFAULT 0, "comment_id" INTEGER DEFAULT null, '
    '"updated_at" TIMESTAMPTZ NOT NULL DEFAULT current_timestamp, '
    "\"state\" VARCHAR(20) NOT NULL DEFAULT 'written'"
)

FORK_REFUSED = (
    "Not built: pull requests from forks are not built, so they never see the project's "
    "secrets. A project owner can allow fork builds in the project settings."
)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _is(text: str) -> str:
    return f'"error" = {_literal(text)}'


def _starts(prefix: str) -> str:
    # Not LIKE: SQLite's LIKE ignores case, PostgreSQL's does not; this matches alike on both.
    return f'substr("error", 1, {len(prefix)}) = {_literal(prefix)}'


ERROR_CODES: tuple[tuple[str, str | None, str], ...] = (
    ("cancelled", _is(FORK_REFUSED), "fork_refused"),
    ("cancelled", _starts("superseded by "), "superseded"),
    ("cancelled", _is("the branch was deleted"), "branch_deleted"),
    ("cancelled", None, "cancelled"),
    ("failed", _starts("the build timed out after "), "timeout"),
    ("failed", _is("the build finished without uploading its files"), "no_output"),
    ("failed", _starts("the build could not start:"), "start_failed"),
    ("failed", _starts("the project's env vars cannot be decrypted"), "env_unopenable"),
    ("failed", _starts("GitHub gave no token to clone"), "clone_token_unavailable"),
    ("failed", '"platform_fault"', "interrupted"),
    ("failed", None, "build_failed"),
)
"""(state, what the previous code's `error` says, code): the first match wins; else null."""


def _when(state: str, test: str | None) -> str:
    return f'"state" = {_literal(state)}' + ("" if test is None else f" AND {test}")


_ERROR_CODE = (
    "CASE "
    + " ".join(
        f"WHEN {_when(state, test)} THEN {_literal(code)}" for state, test, code in ERROR_CODES
    )
    + " END"
)
_UNSETTLED = """("github_reported" IS NULL OR substr("github_reported", 1, 2) = 'c:')"""
"""Nothing told to GitHub yet, or a replica was telling it (its claim is dropped)."""

BACKFILL_DEPLOYMENTS = (
    f"UPDATE {DEPLOYMENT} SET "
    f'"report_pending" = {_UNSETTLED}, '
    f'"reported_phase" = CASE WHEN {_UNSETTLED} THEN NULL ELSE "github_reported" END, '
    f'"error_code" = {_ERROR_CODE}'
)
RESTORE_GITHUB_REPORTED = (
    f"UPDATE {DEPLOYMENT} SET "
    '"github_reported" = CASE WHEN "report_pending" THEN NULL ELSE "reported_phase" END'
)


def _forwards_sql(sqlite: bool) -> list[str]:
    statements = [
        f'ALTER TABLE {DEPLOYMENT} ADD COLUMN "{name}" {definition}'
        for name, definition in REPORT_COLUMNS.items()
    ]
    statements += [BACKFILL_DEPLOYMENTS, f'ALTER TABLE {DEPLOYMENT} DROP COLUMN "github_reported"']
    if sqlite:
        return statements + _rebuild_comments(
            COMMENT_COLUMNS_AFTER,
            '"id", "repository", "pr_number", "comment_id", "updated_at", "state"',
            '"id", "repository", "pr_number", NULLIF("comment_id", 0), "updated_at", '
            """CASE WHEN "comment_id" = 0 THEN 'writing' ELSE 'written' END""",
        )
    return [
        *statements,
        f'ALTER TABLE {COMMENT} ALTER COLUMN "comment_id" DROP NOT NULL, '
        'ALTER COLUMN "comment_id" DROP DEFAULT, '
        """ADD COLUMN "state" VARCHAR(20) NOT NULL DEFAULT 'written'""",
        f"""UPDATE {COMMENT} SET "state" = 'writing', "comment_id" = NULL """
        'WHERE "comment_id" = 0',
    ]


def _backwards_sql(sqlite: bool) -> list[str]:
    statements = [
        f'ALTER TABLE {DEPLOYMENT} ADD COLUMN "github_reported" {GITHUB_REPORTED}',
        RESTORE_GITHUB_REPORTED,
    ]
    statements += [f'ALTER TABLE {DEPLOYMENT} DROP COLUMN "{name}"' for name in REPORT_COLUMNS]
    # A comment being written had id 0; a written one has its id (null only if the new code
    # left one inconsistent, and NOT NULL needs something).
    comment_id = """CASE WHEN "state" = 'writing' THEN 0 ELSE COALESCE("comment_id", 0) END"""
    if sqlite:
        return statements + _rebuild_comments(
            COMMENT_COLUMNS_BEFORE,
            '"id", "repository", "pr_number", "comment_id", "updated_at"',
            f'"id", "repository", "pr_number", {comment_id}, "updated_at"',
        )
    return [
        *statements,
        f'UPDATE {COMMENT} SET "comment_id" = {comment_id} '
        """WHERE "state" = 'writing' OR "comment_id" IS NULL""",
        f'ALTER TABLE {COMMENT} DROP COLUMN "state", '
        'ALTER COLUMN "comment_id" SET DEFAULT 0, ALTER COLUMN "comment_id" SET NOT NULL',
    ]


def _rebuild_comments(columns: str, names: str, values: str) -> list[str]:
    return [
        f"CREATE TABLE {COMMENT_REBUILT} ({columns})",
        f"INSERT INTO {COMMENT_REBUILT} ({names}) SELECT {values} FROM {COMMENT}",
        f"DROP TABLE {COMMENT}",
        f"ALTER TABLE {COMMENT_REBUILT} RENAME TO {COMMENT}",
        COMMENT_INDEX,
    ]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="scalemesh", description=DESCRIPTION)

    async def run(backwards: bool) -> None:
        engine = engine_finder()
        assert engine is not None
        sqlite = engine.engine_type == "sqlite"
        if sqlite and sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError(
                f"migration {ID} needs SQLite 3.35 or newer (ALTER TABLE DROP COLUMN); "
                f"this is {sqlite3.sqlite_version}"
            )
        for statement in _backwards_sql(sqlite) if backwards else _forwards_sql(sqlite):
            await engine.run_ddl(statement)

    async def forward() -> None:
        await run(backwards=False)

    async def backward() -> None:
        await run(backwards=True)

    manager.add_raw(forward)
    manager.add_raw_backwards(backward)
    return manager
