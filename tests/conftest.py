"""Shared fixtures: settings on a temporary data dir, a migrated database on each engine, a client.

Every test that takes `database_url` runs on SQLite and, when `SCALEMESH_TEST_POSTGRES_URL` is
set, on PostgreSQL too (in a database of its own, dropped afterwards). Tests needing PostgreSQL or
Redis skip when their variable is unset; `.ci/run` sets both and fails on any skip.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from litestar.testing import TestClient

from app import database
from app.settings import Settings
from app.tables import TABLES

T = TypeVar("T")

POSTGRES_URL = os.environ.get("SCALEMESH_TEST_POSTGRES_URL", "")
REDIS_URL = os.environ.get("SCALEMESH_TEST_REDIS_URL", "")
TEST_SECRET_KEY = "test-secret-key-" + "x" * 32


def postgres_url() -> str:
    if not POSTGRES_URL:
        pytest.skip("SCALEMESH_TEST_POSTGRES_URL is not set")
    return POSTGRES_URL


def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("SCALEMESH_TEST_REDIS_URL is not set")
    return REDIS_URL


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


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, so boto3 never goes looking for real ones on the network."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(postgres_url())
    yield databases
    databases.drop_all()


def migrate(url: str) -> None:
    settings = Settings.from_env(
        {"SCALEMESH_DATABASE_URL": url, "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY}
    )
    asyncio.run(database.migrate(database.make_engine(settings.database)))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_migrated(postgres_databases: PostgresDatabases) -> str:
    url = postgres_databases.new()
    migrate(url)
    return url


async def _truncate(url: str) -> None:
    names = ", ".join(f'"{table._meta.tablename}"' for table in TABLES)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database on each engine."""
    if request.param == "sqlite":
        path = tmp_path / "scalemesh.sqlite3"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_migrated")
    asyncio.run(_truncate(url))
    return url


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        environ = {
            "SCALEMESH_DATA_DIR": str(tmp_path / "data"),
            "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY,
            "SCALEMESH_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        }
        environ.update(overrides)
        return Settings.from_env(environ)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(SCALEMESH_DATABASE_URL=database_url)


class Client(TestClient[Any]):
    """A test client that can also run database queries inside the app's event loop."""

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        async def call() -> T:
            return await make()

        return self.blocking_portal.call(call)


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    """The API with no reconcile loop and no network: refs resolve to made-up commits."""
    from app.asgi import create_app

    app = create_app(settings, ref_resolver=OfflineResolver(), reconcile=False)
    with Client(app) as test_client:
        yield test_client


class OfflineResolver:
    """Resolves every well-formed branch name to a made-up commit, asking no server."""

    async def resolve(self, git_url: str, ref: str) -> Any:
        import hashlib

        from app.refs import RefError, ResolvedRef, is_ref_name

        if not is_ref_name(ref):
            raise RefError(f"{ref!r} is not a branch, a tag or a full sha.")
        sha = hashlib.sha1(f"{git_url}#{ref}".encode()).hexdigest()  # noqa: S324 - not security
        return ResolvedRef(sha=sha, branch=ref, ref=ref)


PASSWORD = "correct horse battery"


def sign_up(client: TestClient[Any], email: str = "ada@example.com") -> str:
    """Create an account and sign in with a bearer token; return the token."""
    assert (
        client.post("/user/signup", json={"email": email, "password": PASSWORD}).status_code == 201
    )
    response = client.post("/user/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    client.cookies.clear()
    token: str = response.json()["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
