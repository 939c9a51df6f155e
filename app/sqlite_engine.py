"""Piccolo's SQLite engine with connections kept open, and this process's writers in one queue.

Piccolo's `SQLiteEngine` opens a new connection for every query outside a transaction and for
every transaction: a thread started, the file opened, a pragma run, then all of it torn down.
Under a burst of webhook deliveries that was most of each delivery's cost, and every query's
thread fought the event loop for the GIL. `PooledSQLiteEngine` keeps a few connections open
while `open_pool` is in force (the app's lifespan) and lends them out; outside that, or from
another event loop, it behaves exactly like Piccolo's engine.

SQLite admits one writer at a time and makes the others wait in a sleep that backs off up to
100 ms per try, so a write could wait seconds while later ones slipped past. Writers of this
process therefore queue on one asyncio lock first (`exclusive_writer`), and then find the
database free; only other processes still meet SQLite's own wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

import aiosqlite
from piccolo.engine.sqlite import SQLiteEngine, dict_factory

POOL_SIZE = 4
"""Connections kept open per engine: reads run side by side in WAL mode; writes queue anyway."""
_WRITES = frozenset({"insert", "update", "delete"})
"""Piccolo's query types that write (raw SQL is "generic" and is not queued)."""
_RETURNING_SINCE = (3, 35)
_ITER_CHUNK_SIZE = 64
"""aiosqlite's own default, which `aiosqlite.connect` would pass."""

_writer_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
_holding_writer: ContextVar[bool] = ContextVar("holding_sqlite_writer", default=False)


@contextlib.asynccontextmanager
async def exclusive_writer() -> AsyncIterator[None]:
    """Wait for this process's other SQLite writers to finish; re-entrant within one task."""
    if _holding_writer.get():
        yield
        return
    lock = _writer_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        holding = _holding_writer.set(True)
        try:
            yield
        finally:
            _holding_writer.reset(holding)


class _PooledConnection(aiosqlite.Connection):
    """A connection whose `close()` hands it back to its pool (Piccolo closes what it used)."""

    pool: _Pool | None = None

    async def close(self) -> None:
        pool = self.pool
        if pool is None:
            await super().close()
        else:
            await pool.release(self)

    async def discard(self) -> None:
        self.pool = None
        await super().close()


class _Pool:
    """Up to `size` open connections of one engine, for the event loop that opened them."""

    def __init__(self, engine: PooledSQLiteEngine, size: int) -> None:
        self.engine = engine
        self.size = size
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self._idle: asyncio.LifoQueue[_PooledConnection] = asyncio.LifoQueue()
        self._opened = 0

    async def acquire(self) -> _PooledConnection:
        if self._idle.empty() and self._opened < self.size:
            # Counted before the await, so concurrent callers cannot open more than `size`.
            self._opened += 1
            try:
                return await self._connect()
            except BaseException:
                self._opened -= 1
                raise
        return await self._idle.get()

    async def _connect(self) -> _PooledConnection:
        connector = functools.partial(sqlite3.connect, **self.engine.connection_kwargs)
        connection = _PooledConnection(connector, _ITER_CHUNK_SIZE)
        await connection  # starts its thread and opens the file
        try:
            # aiosqlite types `row_factory` as a class; sqlite3 takes any callable, as Piccolo.
            connection.row_factory = dict_factory  # type: ignore[assignment]
            await connection.execute("PRAGMA foreign_keys = 1")
            # In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit survives
            # the process crashing, and only a power cut can undo the last moments. FULL's
            # fsync per commit halved the webhook edge's rate and tripled its p99 here.
            await connection.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            # Its thread is not a daemon: left open, it would keep the process from exiting.
            await connection.discard()
            raise
        connection.pool = self
        return connection

    async def _discard(self, connection: _PooledConnection) -> None:
        self._opened -= 1
        await connection.discard()

    async def release(self, connection: _PooledConnection) -> None:
        if self.closed:
            await self._discard(connection)
            return
        if connection.in_transaction:
            # A transaction that ended without COMMIT or ROLLBACK (its task was cancelled):
            # the next borrower must not inherit it.
            try:
                await connection.rollback()
            except sqlite3.Error:
                await self._discard(connection)
                return
        self._idle.put_nowait(connection)

    async def close(self) -> None:
        self.closed = True
        while not self._idle.empty():
            await self._discard(self._idle.get_nowait())


class PooledSQLiteEngine(SQLiteEngine):
    """`SQLiteEngine` that lends open connections while `open_pool` is in force."""

    def __init__(self, path: str, **connection_kwargs: Any) -> None:
        super().__init__(path=path, **connection_kwargs)
        self._pool: _Pool | None = None

    async def open_pool(self, size: int = POOL_SIZE) -> None:
        # Older SQLite has no RETURNING; Piccolo's own path works around that, ours does not.
        if self._pool is None and sqlite3.sqlite_version_info >= _RETURNING_SINCE:
            self._pool = _Pool(self, size)

    async def close_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _pool_here(self) -> _Pool | None:
        pool = self._pool
        if pool is None or pool.loop is not asyncio.get_running_loop():
            return None
        return pool

    async def get_connection(self) -> aiosqlite.Connection:
        """A connection for a transaction (Piccolo closes it after; ours go back to the pool)."""
        pool = self._pool_here()
        if pool is None:
            return await super().get_connection()
        return await pool.acquire()

    async def _run_in_new_connection(
        self,
        query: str,
        args: list[Any] | None = None,
        query_type: str = "generic",
        table: Any = None,
    ) -> Any:
        writes = query_type in _WRITES
        async with exclusive_writer() if writes else contextlib.nullcontext():
            pool = self._pool_here()
            if pool is None:
                return await super()._run_in_new_connection(query, args, query_type, table)
            connection = await pool.acquire()
            try:
                # Autocommit (`isolation_level=None`): the statement is its own transaction.
                return await _fetch_all(connection, query, args)
            finally:
                await pool.release(connection)

    async def _run_in_existing_connection(
        self,
        connection: aiosqlite.Connection,
        query: str,
        args: list[Any] | None = None,
        query_type: str = "generic",
        table: Any = None,
    ) -> Any:
        if not isinstance(connection, _PooledConnection):
            return await super()._run_in_existing_connection(
                connection, query, args, query_type, table
            )
        # The pool set the row factory and foreign keys when it opened the connection.
        return await _fetch_all(connection, query, args)


async def _fetch_all(
    connection: aiosqlite.Connection, query: str, args: list[Any] | None
) -> list[dict[str, Any]]:
    """Run a statement and read its rows in one trip to the connection's thread.

    Piccolo's way (execute, fetch, close the cursor) is three trips, each a hand-off between
    threads that waits for the GIL; under load those waits were most of a query's time.
    """
    rows = await connection.execute_fetchall(query, args or [])
    return list(rows)  # type: ignore[arg-type]  # dicts: the pool's row factory is dict_factory
