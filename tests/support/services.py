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
        for name in self.created:
            asyncio.run(_admin(self.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def migrate(url: str) -> None:
    settings = Settings.from_env(
        {"SCALEMESH_DATABASE_URL": url, "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY}
    )
    asyncio.run(database.migrate(database.make_engine(settings.database)))


async def _truncate(url: str) -> None:
    names = ", ".join(f'"{table._meta.tablename}"' for table in TABLES)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


def empty(url: str) -> None:
    """Delete every row of a migrated PostgreSQL database, as if freshly migrated."""
    asyncio.run(_truncate(url))
