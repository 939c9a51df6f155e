"""The optional PostgreSQL and Redis: where they are, throw-away databases, per-test names.

Tests needing either skip when its variable is unset; `.ci/run` sets both and fails on a skip.
Every name a test uses on the shared Redis (a pub/sub channel, a key) is unique to that test,
so parallel xdist workers never see each other's messages or data.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from app import database
from app.settings import Settings
from app.tables import TABLES
from tests.support.api import TEST_SECRET_KEY

POSTGRES_URL = os.environ.get("SCALEMESH_TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("SCALEMESH_TEST_REDIS_URL", "")
DROPS_AT_ONCE = 20
"""At most this many connections per test process drop databases at the end, with those of
`DROPS_IN_BACKGROUND` (the server allows 100 in all)."""
DROPS_IN_BACKGROUND = 4
"""Databases `discard` drops at once while tests run."""


def postgres_url() -> str:
    if not POSTGRES_URL:
        pytest.skip("SCALEMESH_TEST_POSTGRES_URL is not set")
    return POSTGRES_URL


def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("SCALEMESH_TEST_REDIS_URL is not set")
    return REDIS_URL


def unique_name(prefix: str) -> str:
    """`prefix` plus a random suffix: a Redis channel or key no other test (or worker) uses."""
    return f"{prefix}:test-{secrets.token_hex(8)}"


def _database(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def _drop(url: str, name: str) -> None:
    await _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_now(url: str, name: str) -> None:
    asyncio.run(_drop(url, name))


async def _admin(url: str, sql: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


class PostgresDatabases:
    """Creates throw-away databases next to the test database and drops them at the end.

    Databases, not schemas: Piccolo's migration runner checks for its table in every schema,
    so two migrated schemas in one database confuse it.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.created: list[str] = []
        self._dropper: ThreadPoolExecutor | None = None
        self._dropping: dict[str, Future[None]] = {}

    def new(self) -> str:
        name = self._name()
        asyncio.run(_admin(self.url, f'CREATE DATABASE "{name}"'))
        return self._url(name)

    async def copy(self, url: str) -> str:
        """A new database holding what the database at `url` holds; it must have no open
        connection (PostgreSQL copies a template only when nobody is connected to it)."""
        name = self._name()
        await _admin(self.url, f'CREATE DATABASE "{name}" TEMPLATE "{_database(url)}"')
        return self._url(name)

    async def replace(self, url: str, template: str) -> str:
        """Make the database at `url` a copy of the database at `template`, under its own name
        (an engine holds only the URL); return the URL the replaced one now has. Neither may
        have an open connection."""
        name, set_aside = _database(url), self._name()
        connection = await asyncpg.connect(self.url)
        try:
            # Renamed, not dropped: DROP DATABASE waits for a checkpoint (~1 s under load).
            await connection.execute(f'ALTER DATABASE "{name}" RENAME TO "{set_aside}"')
            await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_database(template)}"')
        finally:
            await connection.close()
        return self._url(set_aside)

    def _name(self) -> str:
        name = f"scalemesh_test_{secrets.token_hex(4)}"
        self.created.append(name)
        return name

    def _url(self, name: str) -> str:
        return urlunsplit(urlsplit(self.url)._replace(path=f"/{name}"))

    def discard(self, url: str) -> None:
        """Drop the database at `url` in the background, now that nothing uses it, so that
        `drop_all` has fewer left: each DROP DATABASE waits for a checkpoint (seconds on a
        loaded machine), a wait the tests still running need not share."""
        if self._dropper is None:
            self._dropper = ThreadPoolExecutor(DROPS_IN_BACKGROUND, "drop-database")
        name = _database(url)
        self._dropping[name] = self._dropper.submit(_drop_now, self.url, name)

    def drop_all(self) -> None:
        dropping = self._dropping
        if self._dropper is not None:
            # Those not started yet join the last drops below rather than wait their turn.
            self._dropper.shutdown(wait=False, cancel_futures=True)
        left = [name for name in self.created if name not in dropping or dropping[name].cancelled()]
        # Together: each DROP DATABASE waits for a checkpoint, which concurrent drops share.
        # Not all at once, though: a connection each can reach max_connections (100) when
        # xdist workers end together.
        at_once = asyncio.Semaphore(DROPS_AT_ONCE)

        async def drop(name: str) -> None:
            async with at_once:
                await _drop(self.url, name)

        async def drop_them() -> None:
            await asyncio.gather(*(drop(name) for name in left))

        asyncio.run(drop_them())
        for started in dropping.values():
            if not started.cancelled():
                started.result()


def migrate(url: str) -> None:
    settings = Settings.from_env(
        {"SCALEMESH_DATABASE_URL": url, "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY}
    )
    asyncio.run(database.migrate(database.make_engine(settings.database)))


class Emptier:
    """Empties a migrated PostgreSQL database between tests, over one connection kept open.

    Every row is deleted and every sequence restarts at 1, as `TRUNCATE … RESTART IDENTITY`
    would leave it, for a fraction of the cost: TRUNCATE makes new files for every table
    (~50 ms a test), while DELETE on the few rows a test wrote takes about a millisecond.
    The connection lives on a private event loop, never set as the thread's current loop.
    """

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._connection: asyncpg.Connection = self._loop.run_until_complete(asyncpg.connect(url))
        self._statements = self._loop.run_until_complete(self._prepare())

    async def _prepare(self) -> str:
        sequences = await self._connection.fetch(
            "SELECT schemaname, sequencename FROM pg_sequences WHERE schemaname = 'public'"
        )
        # Children first: the foreign keys point from later tables to earlier ones.
        deletes = [
            f'DELETE FROM "{table._meta.tablename}"'  # noqa: S608 - names from the schema
            for table in reversed(TABLES)
        ]
        restarts = [
            f"""SELECT setval('"{row["schemaname"]}"."{row["sequencename"]}"', 1, false)"""
            for row in sequences
        ]
        return ";\n".join([*deletes, *restarts])

    def __call__(self) -> None:
        async def empty() -> None:
            async with self._connection.transaction():
                await self._connection.execute(self._statements)

        self._loop.run_until_complete(empty())

    def close(self) -> None:
        self._loop.run_until_complete(self._connection.close())
        self._loop.close()
