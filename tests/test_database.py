"""Migrations apply forward on SQLite and PostgreSQL, and the schema enforces what it promises."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from piccolo.engine.postgres import PostgresEngine

from app import database
from app.asgi import NotMigrated, create_app
from app.settings import Settings
from app.tables import TABLES, EnvVar, Project, PullRequestComment, User
from tests.support.api import Client
from tests.support.services import PostgresDatabases


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with nothing in it, not even the migrations table."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    return databases.new()


def test_migrations_apply_forward_once(
    make_settings: Callable[..., Settings], empty_database_url: str
) -> None:
    settings = make_settings(SCALEMESH_DATABASE_URL=empty_database_url)
    engine = database.make_engine(settings.database)

    async def scenario() -> tuple[list[str], list[str], list[str], list[str], list[bool]]:
        pending = await database.pending_migrations(engine)
        applied = await database.migrate(engine)
        again = await database.migrate(engine)
        left = await database.pending_migrations(engine)
        exists = [await table.table_exists() for table in TABLES]
        return pending, applied, again, left, exists

    pending, applied, again, left, exists = asyncio.run(scenario())

    assert len(pending) >= 2
    assert applied == pending
    assert again == []
    assert left == []
    assert all(exists)


def test_composite_unique_indexes_hold(client: Client) -> None:
    async def scenario() -> tuple[bool, bool]:
        user = await User.insert(User(email="a@example.com", password_hash="x"))
        project = await Project.insert(
            Project(slug="web", name="web", owner=user[0]["id"], git_url="https://x/y")
        )
        project_id = project[0]["id"]
        await EnvVar.insert(EnvVar(project=project_id, name="A", value_sealed=b"1"))
        await PullRequestComment.insert(
            PullRequestComment(repository="o/r", pr_number=1, comment_id=10)
        )
        env_clash = pr_clash = False
        try:
            await EnvVar.insert(EnvVar(project=project_id, name="A", value_sealed=b"2"))
        except Exception as exc:
            env_clash = database.is_unique_violation(exc)
        try:
            await PullRequestComment.insert(
                PullRequestComment(repository="o/r", pr_number=1, comment_id=11)
            )
        except Exception as exc:
            pr_clash = database.is_unique_violation(exc)
        return env_clash, pr_clash

    assert client.run(scenario) == (True, True)


def test_the_app_refuses_to_start_on_an_unmigrated_database(
    make_settings: Callable[..., Settings], empty_database_url: str
) -> None:
    settings = make_settings(SCALEMESH_DATABASE_URL=empty_database_url)

    refused = pytest.RaisesGroup(
        pytest.RaisesExc(NotMigrated, match="run `scalemesh migrate`"), flatten_subgroups=True
    )
    with refused, Client(create_app(settings)):
        pass


@pytest.mark.postgres
def test_the_postgres_pool_lives_as_long_as_the_app(
    make_settings: Callable[..., Settings], postgres_migrated: str
) -> None:
    settings = make_settings(SCALEMESH_DATABASE_URL=postgres_migrated)
    app = create_app(settings)
    engine = Project._meta.db
    assert isinstance(engine, PostgresEngine)

    with Client(app) as client:
        assert engine.pool is not None
        assert client.get("/health").json()["components"]["database"] == "ok"

    assert engine.pool is None


def test_unique_violation_is_recognised_only_for_clashes() -> None:
    assert not database.is_unique_violation(ValueError("UNIQUE"))


def test_a_failed_migration_is_an_error_naming_it(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from piccolo.apps.migrations.commands.base import MigrationResult

    async def refuse(app_name: str) -> MigrationResult:
        print("  - 2026-11-27T21:25:46 [forwards]... failed")
        return MigrationResult(success=False, message="migration 2026-11-27T21:25:46 failed")

    monkeypatch.setattr(database, "run_forwards", refuse)
    settings = make_settings(SCALEMESH_DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")

    with pytest.raises(database.MigrationError, match="2026-11-27T21:25:46 failed"):
        asyncio.run(database.migrate(database.make_engine(settings.database)))


@pytest.mark.postgres
def test_the_pool_stays_open_until_its_last_user_leaves(
    make_settings: Callable[..., Settings], postgres_migrated: str
) -> None:
    engine = database.make_engine(make_settings(SCALEMESH_DATABASE_URL=postgres_migrated).database)
    assert isinstance(engine, PostgresEngine)

    async def scenario() -> list[bool]:
        seen = []
        async with database.connection_pool(engine):
            async with database.connection_pool(engine):
                seen.append(engine.pool is not None)
            seen.append(engine.pool is not None)
        seen.append(engine.pool is not None)
        return seen

    assert asyncio.run(scenario()) == [True, True, False]


def test_one_database_gets_one_engine(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()

    assert database.make_engine(settings.database) is database.make_engine(settings.database)


def test_the_sqlite_file_is_switched_to_write_ahead_logging(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    import sqlite3

    path = tmp_path / "wal.sqlite3"
    settings = make_settings(SCALEMESH_DATABASE_URL=f"sqlite:///{path}")
    engine = database.make_engine(settings.database)

    async def open_once() -> None:
        async with database.connection_pool(engine):
            pass

    asyncio.run(open_once())
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_write_transaction_inside_another_does_not_wait_for_itself(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(SCALEMESH_DATABASE_URL=f"sqlite:///{tmp_path / 'nest.sqlite3'}")
    engine = database.make_engine(settings.database)

    async def nested() -> list[dict[str, object]]:
        await database.migrate(engine)
        async with database.write_transaction(engine):
            await User.insert(User(email="outer@example.com", password_hash="x"))
            async with database.write_transaction(engine):
                await User.insert(User(email="inner@example.com", password_hash="x"))
        rows: list[dict[str, object]] = await User.select(User.email).order_by(User.email)
        return rows

    rows = asyncio.run(asyncio.wait_for(nested(), 10))
    assert rows == [{"email": "inner@example.com"}, {"email": "outer@example.com"}]
