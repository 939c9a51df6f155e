"""Build the API application from settings; its lifespan owns every client it uses."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar
from litestar.di import Provide
from redis.asyncio import Redis

from app import database, health, projects, users
from app.database import AnyEngine
from app.envvars import Sealer
from app.errors import EXCEPTION_HANDLERS
from app.health import HealthChecks
from app.openapi import StrictStructSchemaPlugin, openapi_config
from app.settings import Settings
from app.storage import Storage, storage_from_settings

MAX_BODY_BYTES = 1024 * 1024
VERSION = "0.1.0"


class NotMigrated(RuntimeError):
    """The database schema is behind the code."""


def create_app(settings: Settings) -> Litestar:
    engine = database.make_engine(settings.database)
    database.bind(engine)
    storage = storage_from_settings(settings.storage)
    sealer = Sealer(settings.secret_key)
    clients: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(database.connection_pool(engine))
            pending = await database.pending_migrations(engine)
            if pending:
                raise NotMigrated(
                    f"the database is missing {len(pending)} migration(s); run `scalemesh migrate`"
                )
            if settings.redis_url is not None:
                redis = Redis.from_url(settings.redis_url.reveal())
                stack.push_async_callback(redis.aclose)
                clients["redis"] = redis
            yield

    def health_checks() -> HealthChecks:
        checks: dict[str, health.HealthCheck] = {
            "database": lambda: database.ping(engine),
            "storage": storage.check,
        }
        redis: Redis | None = clients.get("redis")
        if redis is not None:

            async def ping_redis() -> None:
                await redis.ping()

            checks["log_bus"] = ping_redis
        else:
            checks["log_bus"] = _in_memory_ok
        return checks

    return Litestar(
        route_handlers=[*health.ROUTES, *users.ROUTES, *projects.ROUTES],
        lifespan=[lifespan],
        dependencies={
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "engine": Provide(lambda: engine, sync_to_thread=False),
            "sealer": Provide(lambda: sealer, sync_to_thread=False),
            "storage": Provide(lambda: storage, sync_to_thread=False),
            "health_checks": Provide(health_checks, sync_to_thread=False),
        },
        signature_types=[Settings, AnyEngine, Sealer, Storage],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=openapi_config(VERSION),
        plugins=[StrictStructSchemaPlugin()],
        logging_config=None,
        debug=False,
    )


async def _in_memory_ok() -> None:
    """The in-process log bus lives and dies with this process: if we answer, it does."""


def create_app_from_env() -> Litestar:
    """Entry point for `uvicorn --factory`: read settings when the worker starts."""
    return create_app(Settings.from_env())
