"""The proxy on PostgreSQL through `deploy/k8s/proxy-db-role.sql`'s role: it reads, never writes.

The role is made by the very SQL an operator runs (its name made unique per test: roles belong
to the whole server), and the proxy runs as its pod does: no secret key, only the preview key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from app import database
from app.settings import Settings
from proxy.asgi import running
from proxy.readiness import READYZ_PATH
from tests.support.migration_checks import dump, schema
from tests.support.proxy import INDEX, Served, seed
from tests.support.services import PostgresDatabases, migrate
from tests.support.topology_database import drop_role, read_only_role

pytestmark = pytest.mark.postgres


async def admin(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def test_the_proxy_serves_through_a_role_that_can_only_read(
    postgres_databases: PostgresDatabases, make_settings: Callable[..., Settings]
) -> None:
    owner_url = postgres_databases.new()
    migrate(owner_url)
    role, role_url = read_only_role(owner_url)
    try:
        asyncio.run(seed(make_settings(SCALEMESH_DATABASE_URL=owner_url)))
        # As the proxy pod runs: its own database URL, the preview key, no secret key.
        settings = make_settings(SCALEMESH_DATABASE_URL=role_url, SCALEMESH_SECRET_KEY="")
        assert settings.secret_keys is None

        async def serve() -> tuple[int, bytes, int]:
            async with running(settings) as proxy:
                served = Served(proxy)
                page = await served.get("/")
                ready = await served.get(READYZ_PATH)
                await served.http.aclose()
            return page.status_code, page.content, ready.status_code

        assert asyncio.run(serve()) == (200, INDEX, 200)

        async def write_as_the_role() -> list[str]:
            refused = []
            for statements in (
                ["UPDATE scalemesh_alias SET hostname = 'stolen'"],
                ["SET default_transaction_read_only = off", "DELETE FROM scalemesh_deployment"],
            ):
                with pytest.raises(asyncpg.PostgresError) as caught:
                    await admin(role_url, *statements)
                refused.append(type(caught.value).__name__)
            return refused

        assert asyncio.run(write_as_the_role()) == [
            "ReadOnlySQLTransactionError",
            "InsufficientPrivilegeError",
        ]
        # A table a later migration adds is readable too (the default privileges).
        asyncio.run(admin(owner_url, "CREATE TABLE scalemesh_later (id int)"))
        asyncio.run(admin(role_url, "SELECT * FROM scalemesh_later"))
    finally:
        drop_role(owner_url, role)


DDL_AND_WRITES = (
    "INSERT INTO scalemesh_alias (hostname, project, deployment) "
    "SELECT 'stolen.example', project, deployment FROM scalemesh_alias LIMIT 1",
    "TRUNCATE scalemesh_deployment CASCADE",
    "ALTER TABLE scalemesh_alias ADD COLUMN stolen int",
    "DROP TABLE scalemesh_alias CASCADE",
    "CREATE TABLE scalemesh_planted (id int)",
    "CREATE FUNCTION public.lower(varchar) RETURNS text LANGUAGE sql AS 'SELECT $1::text'",
    "CREATE SCHEMA planted",
    "CREATE ROLE planted LOGIN SUPERUSER",
)
"""What a proxy whose database URL leaked could try: write, or change what the API runs on."""


def test_the_proxy_role_can_change_no_table_schema_or_role(
    postgres_databases: PostgresDatabases, make_settings: Callable[..., Settings]
) -> None:
    owner_url = postgres_databases.new()
    migrate(owner_url)
    asyncio.run(seed(make_settings(SCALEMESH_DATABASE_URL=owner_url)))
    role, role_url = read_only_role(owner_url)

    async def described() -> dict[str, object]:
        connection = await asyncpg.connect(owner_url)
        try:
            schemas = await connection.fetch("SELECT nspname FROM pg_namespace ORDER BY 1")
            functions = await connection.fetch(
                "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
            )
            grants = await connection.fetch(
                "SELECT relname, relacl::text FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace ORDER BY 1"
            )
        finally:
            await connection.close()
        settings = make_settings(SCALEMESH_DATABASE_URL=owner_url)
        engine = database.make_engine(settings.database)
        return {
            "schema": await schema(engine),
            "rows": await dump(engine),
            "schemas": [row["nspname"] for row in schemas],
            "functions": [row["proname"] for row in functions],
            "grants": [tuple(row) for row in grants],
        }

    async def attempt() -> list[str]:
        refused = []
        for statement in DDL_AND_WRITES:
            # Read-only is only the role's default: it may turn it off, and it does here.
            with pytest.raises(asyncpg.PostgresError) as caught:
                await admin(role_url, "SET default_transaction_read_only = off", statement)
            refused.append(type(caught.value).__name__)
        # PostgreSQL only warns that nothing was granted: `after == before` shows it.
        await admin(
            role_url,
            "SET default_transaction_read_only = off",
            "GRANT ALL ON scalemesh_alias TO PUBLIC",
        )
        return refused

    try:
        before = asyncio.run(described())
        refused = asyncio.run(attempt())
        after = asyncio.run(described())
    finally:
        drop_role(owner_url, role)

    assert refused == ["InsufficientPrivilegeError"] * len(DDL_AND_WRITES)
    assert after == before
    assert before["rows"]["scalemesh_alias"]  # there was something to take


def test_the_role_sql_refuses_a_public_schema_every_role_may_create_in(
    postgres_databases: PostgresDatabases,
) -> None:
    # As before PostgreSQL 15: the proxy's role could plant objects the API's queries resolve.
    owner_url = postgres_databases.new()
    migrate(owner_url)
    asyncio.run(admin(owner_url, "GRANT CREATE ON SCHEMA public TO PUBLIC"))
    try:
        with pytest.raises(asyncpg.RaiseError, match="may create objects in schema public"):
            read_only_role(owner_url)
    finally:
        asyncio.run(admin(owner_url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
