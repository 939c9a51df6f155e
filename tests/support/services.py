"""The optional PostgreSQL and Redis: where they are, throw-away databases, per-test names.

Tests needing either skip when its variable is unset; `.ci/run` sets both and fails on a skip.
Every name a test uses on the shared Redis (a pub/sub channel, a key) is unique to that test,
so parallel xdist workers never see each other's messages or data.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from app import database
from app.settings import Settings
from app.tables import TABLES
from tests.support.api import TEST_SECRET_KEY

POSTGRES_URL = os.environ.get("SCALEMESH_TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("SCALEMESH_TEST_REDIS_URL", "")


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

    def new(self) -> str:
        name = f"scalemesh_test_{secrets.token_hex(4)}"
        asyncio.run(_admin(self.url, f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return urlunsplit(urlsplit(self.url)._replace(path=f"/{name}"))

    def drop_all(self) -> None:
        # Together: each DROP DATABASE waits for a checkpoint, which concurrent drops share.
        async def drop() -> None:
            await asyncio.gather(
                *(
                    _admin(self.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    for name in self.created
                )
            )

        asyncio.run(drop())


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
