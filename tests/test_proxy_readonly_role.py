"""The proxy on PostgreSQL through `deploy/k8s/proxy-db-role.sql`'s role: it reads, never writes.

The role is made by the very SQL an operator runs (its name made unique per test: roles belong
to the whole server), and the proxy runs as its pod does: no secret key, only the preview key.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from app.settings import Settings
from proxy.asgi import running
from proxy.readiness import READYZ_PATH
from tests.support.k8s import K8S
from tests.support.proxy import INDEX, Served, seed
from tests.support.services import PostgresDatabases, migrate

pytestmark = pytest.mark.postgres


def with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))


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
    role, password = f"scalemesh_proxy_{secrets.token_hex(4)}", secrets.token_hex(16)
    sql = (K8S / "proxy-db-role.sql").read_text()
    sql = sql.replace("scalemesh_proxy", role).replace(":'proxy_password'", f"'{password}'")
    asyncio.run(admin(owner_url, sql))
    role_url = with_user(owner_url, role, password)
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
        asyncio.run(admin(owner_url, f'DROP OWNED BY "{role}"'))
        asyncio.run(admin(owner_url, f'DROP ROLE "{role}"'))
