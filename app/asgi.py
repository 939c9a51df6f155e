"""Build the API application from settings; its lifespan owns every client it uses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from litestar import Litestar
from litestar.di import Provide
from redis.asyncio import Redis

from app import (
    aliases,
    database,
    deployments,
    handlers,
    health,
    logstream,
    projects,
    users,
    web,
    webhooks,
)
from app.aliases import AliasAnnouncer
from app.database import AnyEngine
from app.deployments import Pipeline
from app.envvars import Sealer
from app.errors import EXCEPTION_HANDLERS, refuse_nul_characters
from app.github.api import GitHubApi, github_from_settings
from app.github.report import Reporter
from app.health import HealthChecks
from app.logs import LogBus, log_bus_from_settings
from app.openapi import StrictStructSchemaPlugin, openapi_config
from app.reconcile import Reconciler
from app.refs import GitRefResolver, RefResolver
from app.runners import BuildRunner, runner_from_settings
from app.settings import Settings
from app.storage import Storage, storage_from_settings

MAX_BODY_BYTES = 1024 * 1024
VERSION = "0.1.0"


class NotMigrated(RuntimeError):
    """The database schema is behind the code."""


@dataclass
class Services:
    """What the lifespan opens and closes; routes get them through dependencies."""

    bus: LogBus | None = None
    announce: AliasAnnouncer | None = None
    runner: BuildRunner | None = None
    reconciler: Reconciler | None = None
    github: GitHubApi | None = None
    reporter: Reporter | None = None
    deliveries: webhooks.DeliveryWorker | None = None


def create_app(
    settings: Settings,
    *,
    runner: BuildRunner | None = None,
    ref_resolver: RefResolver | None = None,
    reconcile: bool = True,
    github: GitHubApi | None = None,
) -> Litestar:
    """The API app. Tests may pass their own runner, resolver or GitHub client, or drive the
    background loops themselves (`reconcile=False`, then `app.state.services.reconciler.tick()`,
    `.reporter.tick()`, `.deliveries.process(id)`)."""
    engine = database.make_engine(settings.database)
    database.bind(engine)
    storage = storage_from_settings(settings.storage)
    sealer = Sealer(settings.secret_key)
    resolver = ref_resolver or GitRefResolver()
    services = Services()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(database.connection_pool(engine))
            pending = await database.pending_migrations(engine)
            if pending:
                raise NotMigrated(
                    f"the database is missing {len(pending)} migration(s); run `scalemesh migrate`"
                )
            redis: Redis | None = None
            if settings.redis_url is not None:
                redis = Redis.from_url(settings.redis_url.reveal())
                stack.push_async_callback(redis.aclose)
            services.announce = aliases.announcer(redis, settings.alias_channel)
            services.bus = bus = log_bus_from_settings(settings, redis)
            stack.push_async_callback(bus.aclose)
            services.runner = build_runner = runner or runner_from_settings(settings, bus)
            stack.push_async_callback(build_runner.aclose)
            services.github = github or github_from_settings(settings)
            if services.github is not None:
                stack.push_async_callback(services.github.aclose)
                services.reporter = Reporter(settings, services.github)
            services.reconciler = reconciler = Reconciler(
                settings,
                engine,
                storage,
                bus,
                build_runner,
                sealer,
                services.announce,
                services.github,
            )
            services.deliveries = deliveries = webhooks.DeliveryWorker(
                handlers.Context(settings, engine, reconciler, services.announce)
            )
            app.state.services = services
            if reconcile:
                await deliveries.recover()
                loops = [reconciler.run(), deliveries.run()]
                if services.reporter is not None:
                    loops.append(services.reporter.run())
                for loop in loops:
                    stack.push_async_callback(_stop, asyncio.create_task(loop))
            yield

    def health_checks() -> HealthChecks:
        assert services.bus is not None  # noqa: S101 - set before the app serves
        return {
            "database": lambda: database.ping(engine),
            "storage": storage.check,
            "log_bus": services.bus.ping,
        }

    return Litestar(
        route_handlers=[
            *health.ROUTES,
            *users.ROUTES,
            *projects.ROUTES,
            *deployments.ROUTES,
            *logstream.ROUTES,
            *web.ROUTES,
            *webhooks.ROUTES,
        ],
        middleware=[web.BrowserPages],
        lifespan=[lifespan],
        dependencies={
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "engine": Provide(lambda: engine, sync_to_thread=False),
            "sealer": Provide(lambda: sealer, sync_to_thread=False),
            "storage": Provide(lambda: storage, sync_to_thread=False),
            "ref_resolver": Provide(lambda: resolver, sync_to_thread=False),
            "log_bus": Provide(lambda: services.bus, sync_to_thread=False),
            "pipeline": Provide(lambda: services.reconciler, sync_to_thread=False),
            "announce_aliases": Provide(lambda: services.announce, sync_to_thread=False),
            "deliveries": Provide(lambda: services.deliveries, sync_to_thread=False),
            "health_checks": Provide(health_checks, sync_to_thread=False),
        },
        signature_types=[
            Settings,
            AnyEngine,
            Sealer,
            Storage,
            LogBus,
            RefResolver,
            Pipeline,
            webhooks.DeliveryWorker,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=refuse_nul_characters,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=openapi_config(VERSION),
        plugins=[StrictStructSchemaPlugin()],
        logging_config=None,
        debug=False,
    )


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app_from_env() -> Litestar:
    """Entry point for `uvicorn --factory`: read settings when the worker starts."""
    return create_app(Settings.from_env())
