"""The pooled SQLite engine: connections kept open and lent out, writers of a process queued."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from app import database, sqlite_engine
from app.settings import Settings
from app.sqlite_engine import PooledSQLiteEngine, exclusive_writer
from app.tables import User

T = TypeVar("T")


@pytest.fixture
def engine(make_settings: Callable[..., Settings], tmp_path: Path) -> PooledSQLiteEngine:
    settings = make_settings(SCALEMESH_DATABASE_URL=f"sqlite:///{tmp_path / 'pool.sqlite3'}")
    made = database.make_engine(settings.database)
    assert isinstance(made, PooledSQLiteEngine)
    asyncio.run(database.migrate(made))
    return made


def run_pooled(engine: PooledSQLiteEngine, scenario: Callable[[], Awaitable[T]]) -> T:
    async def pooled() -> T:
        async with database.connection_pool(engine):
            return await scenario()

    return asyncio.run(asyncio.wait_for(pooled(), 20))


class Tally:
    """Connections the pools open and really close (each is a thread and an open file)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = self.closed = 0
        connect, discard = sqlite_engine._Pool._connect, sqlite_engine._PooledConnection.discard

        async def counted_connect(pool: sqlite_engine._Pool) -> sqlite_engine._PooledConnection:
            connection = await connect(pool)
            self.opened += 1
            return connection

        async def counted_discard(connection: sqlite_engine._PooledConnection) -> None:
            await discard(connection)
            self.closed += 1

        monkeypatch.setattr(sqlite_engine._Pool, "_connect", counted_connect)
        monkeypatch.setattr(sqlite_engine._PooledConnection, "discard", counted_discard)

    @property
    def open(self) -> int:
        return self.opened - self.closed


@pytest.fixture
def tally(monkeypatch: pytest.MonkeyPatch) -> Tally:
    return Tally(monkeypatch)


async def emails() -> list[str]:
    rows = await User.select(User.email).order_by(User.email)
    return [str(row["email"]) for row in rows]


async def add(email: str) -> None:
    await User.insert(User(email=email, password_hash="x"))


def test_queries_share_a_few_open_connections(engine: PooledSQLiteEngine, tally: Tally) -> None:
    async def scenario() -> tuple[list[str], int]:
        await asyncio.gather(*(add(f"u{n}@example.com") for n in range(20)))
        await asyncio.gather(*(emails() for _ in range(20)))
        return await emails(), tally.open

    stored, open_meanwhile = run_pooled(engine, scenario)

    assert len(stored) == 20
    assert 1 <= tally.opened <= sqlite_engine.POOL_SIZE  # 61 queries, a few connections
    assert open_meanwhile == tally.opened
    assert tally.open == 0  # closing the pool closed every connection


def test_a_failed_transaction_leaves_nothing_behind(engine: PooledSQLiteEngine) -> None:
    async def fail_midway() -> None:
        async with database.write_transaction(engine):
            await add("lost@example.com")
            raise RuntimeError("boom")

    async def scenario() -> list[str]:
        with pytest.raises(RuntimeError):
            await fail_midway()
        await add("kept@example.com")
        async with database.write_transaction(engine):
            await add("committed@example.com")
        return await emails()

    assert run_pooled(engine, scenario) == ["committed@example.com", "kept@example.com"]


def test_a_connection_returned_mid_transaction_is_rolled_back(
    engine: PooledSQLiteEngine,
) -> None:
    async def scenario() -> tuple[bool, list[str]]:
        connection = await engine.get_connection()
        await connection.execute("BEGIN IMMEDIATE")
        await connection.execute(
            "INSERT INTO scalemesh_user (email, password_hash, created_at) "
            "VALUES ('half@example.com', 'x', CURRENT_TIMESTAMP)"
        )
        await connection.close()  # as a cancelled task's transaction would leave it
        again = await engine.get_connection()
        try:
            return again.in_transaction, await emails()
        finally:
            await again.close()

    in_transaction, stored = run_pooled(engine, scenario)

    assert in_transaction is False
    assert stored == []


def test_a_connection_that_cannot_roll_back_is_closed_not_lent(
    engine: PooledSQLiteEngine, monkeypatch: pytest.MonkeyPatch, tally: Tally
) -> None:
    async def scenario() -> tuple[int, int, list[str]]:
        connection = await engine.get_connection()
        await connection.execute("BEGIN")
        opened = tally.open

        async def broken() -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(connection, "rollback", broken)
        await connection.close()
        return opened, tally.open, await emails()

    opened, after, stored = run_pooled(engine, scenario)

    assert after == opened - 1
    assert stored == []


def test_a_connection_returned_after_the_pool_closed_is_closed(
    engine: PooledSQLiteEngine, tally: Tally
) -> None:
    async def scenario() -> bool:
        await engine.open_pool()
        connection = await engine.get_connection()
        await engine.close_pool()
        await engine.close_pool()  # a second close is harmless
        await connection.close()
        await connection.close()  # and closing it again is harmless
        with pytest.raises(ValueError, match="no active connection"):
            _ = connection.in_transaction
        return True

    assert asyncio.run(scenario())
    assert (tally.opened, tally.closed) == (1, 1)


def test_one_connection_is_shared_in_turn(engine: PooledSQLiteEngine) -> None:
    async def scenario() -> list[list[str]]:
        await engine.close_pool()
        await engine.open_pool(size=1)
        await add("one@example.com")
        try:
            return list(await asyncio.gather(*(emails() for _ in range(5))))
        finally:
            await engine.close_pool()

    assert asyncio.run(scenario()) == [["one@example.com"]] * 5


def test_a_failed_open_frees_its_place(
    engine: PooledSQLiteEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> list[str]:
        await engine.open_pool(size=1)
        real = sqlite_engine._Pool._connect
        calls = 0

        async def flaky(self: sqlite_engine._Pool) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise sqlite3.OperationalError("unable to open database file")
            return await real(self)

        monkeypatch.setattr(sqlite_engine._Pool, "_connect", flaky)
        try:
            with pytest.raises(sqlite3.OperationalError):
                await emails()
            return await emails()  # would wait for ever if the failed open kept its place
        finally:
            await engine.close_pool()

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == []


def test_a_connection_that_fails_its_setup_is_closed(
    engine: PooledSQLiteEngine, monkeypatch: pytest.MonkeyPatch, tally: Tally
) -> None:
    execute = sqlite_engine._PooledConnection.execute
    failures = ["PRAGMA synchronous = NORMAL"]

    def refuse_once(self: sqlite_engine._PooledConnection, sql: str, *args: Any) -> Any:
        if sql in failures:
            failures.remove(sql)
            raise sqlite3.OperationalError("disk I/O error")
        return execute(self, sql, *args)

    monkeypatch.setattr(sqlite_engine._PooledConnection, "execute", refuse_once)

    async def scenario() -> list[str]:
        with pytest.raises(sqlite3.OperationalError):
            await emails()
        return await emails()

    assert run_pooled(engine, scenario) == []
    assert tally.closed == tally.opened + 1  # the half-made one too, not just the pool's


def test_another_event_loop_opens_its_own_connections(engine: PooledSQLiteEngine) -> None:
    seen: list[list[str]] = []

    def elsewhere() -> None:
        async def in_a_transaction() -> list[str]:
            async with database.write_transaction(engine):
                await add("other-loop@example.com")
                return await emails()

        seen.append(asyncio.run(in_a_transaction()))

    async def scenario() -> list[str]:
        # The pool belongs to this loop; a thread with its own loop must not borrow from it.
        await asyncio.to_thread(elsewhere)
        return await emails()

    assert run_pooled(engine, scenario) == ["other-loop@example.com"]
    assert seen == [["other-loop@example.com"]]


def test_old_sqlite_without_returning_is_not_pooled(
    engine: PooledSQLiteEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_engine.sqlite3, "sqlite_version_info", (3, 34, 1))

    async def scenario() -> bool:
        await engine.open_pool()
        return engine._pool_here() is None

    assert asyncio.run(scenario())


def test_a_write_waits_for_this_processs_writer_not_sqlites_busy_handler(tmp_path: Path) -> None:
    # A busy timeout far shorter than the transaction: without the queue, SQLite would give
    # up on the second writer with "database is locked".
    engine = PooledSQLiteEngine(path=str(tmp_path / "busy.sqlite3"), timeout=0.05)
    order: list[str] = []

    async def holder(started: asyncio.Event) -> None:
        async with database.write_transaction(engine):
            await add("first@example.com")
            started.set()
            await asyncio.sleep(0.3)
            order.append("first committed")

    async def scenario() -> list[str]:
        await database.migrate(engine)
        async with database.connection_pool(engine):
            started = asyncio.Event()
            task = asyncio.create_task(holder(started))
            await started.wait()
            await add("second@example.com")  # an autocommit write, outside any transaction
            order.append("second stored")
            await task
            async with exclusive_writer():
                # Re-entrant: a write inside the writer's turn does not wait for itself.
                await add("third@example.com")
            return await emails()

    stored = asyncio.run(asyncio.wait_for(scenario(), 10))

    assert order == ["first committed", "second stored"]
    assert stored == ["first@example.com", "second@example.com", "third@example.com"]


def test_lent_connections_enforce_foreign_keys_and_sync_at_checkpoints(
    engine: PooledSQLiteEngine,
) -> None:
    async def scenario() -> tuple[Any, Any]:
        return await engine.run_ddl("PRAGMA foreign_keys"), await engine.run_ddl(
            "PRAGMA synchronous"
        )

    foreign_keys, synchronous = run_pooled(engine, scenario)

    assert foreign_keys == [{"foreign_keys": 1}]
    assert synchronous == [{"synchronous": 1}]  # NORMAL: WAL is synced at checkpoints
