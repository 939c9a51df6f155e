"""Open the configured database, point every table at it, migrate it, and check it is alive.

Piccolo finds its engine through a config module; `bind` builds the engine from our settings
and installs it there and on every table, so queries and migrations use the same one.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from piccolo.apps.migrations.commands.forwards import run_forwards
from piccolo.apps.migrations.tables import Migration
from piccolo.columns.combination import WhereRaw
from piccolo.engine.base import Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, TransactionType
from piccolo.table import Table

from app import piccolo_conf
from app.migration_errors import MigrationError, NotMigrated
from app.settings_parts import DatabaseSettings
from app.sqlite_engine import PooledSQLiteEngine, exclusive_writer
from app.tables import TABLES

log = logging.getLogger(__name__)

POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 10
SQLITE_BUSY_TIMEOUT_S = 30


AnyEngine = Engine[Any]


_engines: dict[str, AnyEngine] = {}
"""One engine per database per process: the API and the proxy of `scalemesh dev` share it.

Piccolo binds tables to one engine process-wide, and a transaction belongs to its engine; with
two engines on one SQLite file, a write inside one engine's transaction would run on the other
and wait for its own lock.
"""
_pool_users: dict[int, int] = {}


def make_engine(database: DatabaseSettings) -> AnyEngine:
    url = database.url.reveal()
    engine = _engines.get(url)
    if engine is not None:
        return engine
    if database.path is not None:
        database.path.parent.mkdir(parents=True, exist_ok=True)
        engine = PooledSQLiteEngine(path=str(database.path), timeout=SQLITE_BUSY_TIMEOUT_S)
    else:
        engine = PostgresEngine(config={"dsn": url}, log_queries=False)
    _engines[url] = engine
    return engine


def bind(engine: AnyEngine) -> None:
    """Make `engine` the one every table, and Piccolo's migration runner, uses."""
    # Piccolo's migration runner locates its config only through this variable.
    os.environ["PICCOLO_CONF"] = "app.piccolo_conf"
    piccolo_conf.DB = engine
    tables: tuple[type[Table], ...] = (*TABLES, Migration)
    for table in tables:
        table._meta.db = engine


async def migrate(engine: AnyEngine) -> list[str]:
    """Apply every migration not yet applied; return the ids applied now."""
    bind(engine)
    if isinstance(engine, PooledSQLiteEngine):
        # Stored in the file: processes started after this (`scalemesh dev` starts the API
        # and the proxy at once) find it set, and none needs the lock that switching takes.
        await engine.run_ddl("PRAGMA journal_mode=WAL")
    before = set(await _applied(engine))
    # Piccolo prints progress with emoji; keep it out of our output and logs.
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        result = await run_forwards("scalemesh")
    if not result.success:
        raise MigrationError(f"{result.message}\n{printed.getvalue()}")
    applied = [name for name in await _applied(engine) if name not in before]
    for name in applied:
        log.info("migration applied", extra={"migration": name})
    return applied


async def pending_migrations(engine: AnyEngine) -> list[str]:
    """Migration ids present in the code but not applied to the database."""
    from piccolo.apps.migrations.commands.base import BaseMigrationManager

    bind(engine)
    manager = BaseMigrationManager()
    modules = manager.get_migration_modules(piccolo_conf.APP_CONFIG.resolved_migrations_folder_path)
    known = manager.get_migration_ids(modules)
    applied = set(await _applied(engine))
    return [name for name in known if name not in applied]


async def require_migrated(engine: AnyEngine) -> None:
    """Refuse to go on (`NotMigrated`) when migrations in the code are not applied yet."""
    pending = await pending_migrations(engine)
    if pending:
        raise NotMigrated(
            f"the database is missing {len(pending)} migration(s); run `scalemesh migrate` first"
        )


async def _applied(engine: AnyEngine) -> list[str]:
    if not await _migration_table_exists(engine):
        return []
    names: list[str] = await (
        Migration.select(Migration.name)
        .where(Migration.app_name == "scalemesh")
        .output(as_list=True)
    )
    return sorted(map(str, names))


async def _migration_table_exists(engine: AnyEngine) -> bool:
    if isinstance(engine, PostgresEngine):
        # Piccolo's table_exists() looks in every schema; to_regclass honours search_path.
        rows = await engine.run_ddl("SELECT to_regclass('migration') IS NOT NULL AS found")
        return bool(rows[0]["found"])
    return bool(await Migration.table_exists())


async def ping(engine: AnyEngine) -> None:
    """Raise if the database cannot answer a trivial query."""
    await engine.run_ddl("SELECT 1")


@contextlib.asynccontextmanager
async def connection_pool(engine: AnyEngine) -> AsyncIterator[None]:
    """Hold a PostgreSQL connection pool open while anyone in this process needs it.

    The API and the proxy may share one engine, so the pool opens with the first user and
    closes with the last. For SQLite the file is also switched to write-ahead logging (a
    setting stored in the file), so readers never wait for a writer and a commit costs one
    append rather than a rewritten journal.
    """
    open_pool: Callable[[], Awaitable[None]]
    close_pool: Callable[[], Awaitable[None]]
    if isinstance(engine, PostgresEngine):
        open_pool = functools.partial(
            engine.start_connection_pool, min_size=POOL_MIN_SIZE, max_size=POOL_MAX_SIZE
        )
        close_pool = engine.close_connection_pool
    else:
        assert isinstance(engine, PooledSQLiteEngine)  # noqa: S101 - make_engine makes only these
        await engine.run_ddl("PRAGMA journal_mode=WAL")
        open_pool, close_pool = engine.open_pool, engine.close_pool
    users = _pool_users.get(id(engine), 0)
    if users == 0:
        await open_pool()
    _pool_users[id(engine)] = users + 1
    try:
        yield
    finally:
        _pool_users[id(engine)] -= 1
        if _pool_users[id(engine)] == 0:
            await close_pool()


@contextlib.asynccontextmanager
async def write_transaction(engine: AnyEngine) -> AsyncIterator[None]:
    """A transaction that takes SQLite's write lock up front.

    SQLite's default deferred transactions fail with "database is locked" when two of them read
    and then write at once; IMMEDIATE makes the second wait instead. Writers of this process
    queue first (`exclusive_writer`), so the lock is free when they ask for it.
    """
    if not isinstance(engine, SQLiteEngine):
        async with engine.transaction():
            yield
        return
    async with (
        exclusive_writer(),
        engine.transaction(transaction_type=TransactionType.immediate),
    ):
        yield


def is_unique_violation(exc: BaseException) -> bool:
    """Whether a database error is a unique-constraint clash, on either engine."""
    if isinstance(exc, asyncpg.exceptions.UniqueViolationError):
        return True
    return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)


def same_name(column: str, full_name: str) -> WhereRaw:
    """`column` names the repository `owner/name`: GitHub names are case-insensitive."""
    return WhereRaw(f"lower({column}) = {{}}", full_name.lower())
