"""The topology's database side: queries on its database, and the proxy's read-only role made by
the SQL an operator runs."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.support.processes import ROOT

PROXY_ROLE_SQL = ROOT / "deploy" / "k8s" / "proxy-db-role.sql"


class Database:
    """Queries on the topology's database over one connection, on a private event loop."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._connection: asyncpg.Connection = self._loop.run_until_complete(asyncpg.connect(url))

    def fetch(self, sql: str, *args: object) -> list[dict[str, Any]]:
        rows = self._loop.run_until_complete(self._connection.fetch(sql, *args))
        return [dict(row) for row in rows]

    def execute(self, sql: str, *args: object) -> None:
        self._loop.run_until_complete(self._connection.execute(sql, *args))

    def close(self) -> None:
        self._loop.run_until_complete(self._connection.close())
        self._loop.close()


def _with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def read_only_role(database_url: str) -> tuple[str, str]:
    """The proxy's role, made by the SQL an operator runs (`deploy/k8s/proxy-db-role.sql`), as
    the tables' owner; its name and the proxy's database URL.

    Roles belong to the whole PostgreSQL server: the name is made unique to this run.
    """
    role = f"scalemesh_proxy_{secrets.token_hex(4)}"
    password = secrets.token_hex(16)
    sql = PROXY_ROLE_SQL.read_text()
    sql = sql.replace("scalemesh_proxy", role).replace(":'proxy_password'", f"'{password}'")

    async def create() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(create())
    return role, _with_credentials(database_url, role, password)


def drop_role(database_url: str, role: str) -> None:
    """What the role holds in the database, then the role (it belongs to the whole server)."""

    async def drop() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(f'DROP OWNED BY "{role}"')
            await connection.execute(f'DROP ROLE "{role}"')
        finally:
            await connection.close()

    asyncio.run(drop())
