"""The composition root: build the API from settings; its lifespan owns every client it uses.

Here, and only here, the adapters are chosen from the settings (`runner_from_settings`,
`github_from_settings`, `log_bus_from_settings`) and the services are built and handed to the
routes through dependencies. The CLI builds the same services directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Request
from litestar.di import Provide
from redis.asyncio import Redis

from app import aliases, database, health, logstream
from app.auth.routes import GitHubSignInController
from app.auth.service import GitHubSignIn
from app.auth.user_tokens import UserTokens
from app.builds.grants import UploadGrants, upload_grants_from_settings
from app.builds.routes import InternalBuildController
from app.builds.service import BuildChannel
from app.builds.tokens import BuildTokens
from app.deployments import handlers as deployment_events
from app.deployments.routes import DeploymentController
from app.deployments.service import DeploymentService
from app.deployments.views import DeploymentViews
from app.domains.dns import DnsPythonLookup
from app.domains.rechecks import DomainRechecks
from app.domains.routes import DomainController
from app.domains.service import DomainService
from app.github.api import GitHubApi
from app.github.oauth_api import GitHubUsersApi
from app.github.routing import Router
from app.handler_context import HandlerContext
from app.health import UNSAFE_BUILDS, HealthChecks
from app.http import config_schema
from app.http import metrics as metrics_route
from app.http.csrf import CrossSiteGuard
from app.http.errors import EXCEPTION_HANDLERS, refuse_nul_characters, refuse_undecodable_json
from app.http.openapi import StrictStructSchemaPlugin, openapi_config
from app.installations import handlers as installation_events
from app.logs.bus import LogBus, MemoryLogBus
from app.logs.redis_bus import RedisLogBus
from app.metrics import ApiMetrics
from app.migration_errors import NotMigrated
from app.previews import routes as preview_routes
from app.previews.service import PreviewService
from app.projects.access import Access
from app.projects.env_routes import EnvController
from app.projects.envvars import Sealer
from app.projects.routes import ProjectController
from app.projects.service import ProjectService
from app.reconcile import TIMEOUT_GRACE, Reconciler
from app.redis_client import redis_client
from app.refs import GitRefResolver, RefResolver
from app.reporting.reporter import Reporter
from app.retention.chore_loop import Retention
from app.runners.api import BuildRunner, RunnerError
from app.services import Services
from app.settings import Runner, Settings
from app.storage import Storage
from app.storage.choice import storage_from_settings
from app.users.routes import AccountsController, UserController
from app.users.service import UserService
from app.users.token_routes import TokenController
from app.users.tokens import ApiTokens
from app.web import pages
from app.web.projects import Dashboard
from app.web.routes import ROUTES as PAGES
from app.webhooks import edge
from app.webhooks.dead_letters import count_dead
from app.webhooks.worker import DeliveryWorker

if TYPE_CHECKING:
    from app.runners.ecs import EcsClient

MAX_BODY_BYTES = 1024 * 1024
VERSION = "0.1.0"


def webhook_router() -> Router[HandlerContext]:
    """Every feature's webhook handlers, composed."""
    return Router(installation_events.router, deployment_events.router)


def build_token_ttl(settings: Settings) -> timedelta:
    """How long a build's bootstrap token (and its upload grant) lives: as long as the reconcile
    loop lets the build run."""
    return timedelta(seconds=settings.build_timeout) + TIMEOUT_GRACE


def runner_from_settings(
    settings: Settings,
    bus: LogBus,
    ecs_client: EcsClient | None = None,
    *,
    tokens: BuildTokens | None = None,
) -> BuildRunner:
    """The runner `SCALEMESH_RUNNER` names; a boto3 ECS client is made unless one is given."""
    from app.runners.ecs import EcsRunner

    if settings.runner is Runner.LOCAL:
        from app.runners.local import LocalRunner, work_root_for
        from app.runners.sandbox_choice import choose_sandbox

        return LocalRunner(
            bus,
            settings.runner_env,
            work_root_for(settings.data_dir),
            sandbox=choose_sandbox(settings),
            toolchains=work_root_for(settings.data_dir, "toolchains"),
        )
    if settings.ecs is None:
        raise RunnerError("SCALEMESH_RUNNER=ecs needs the SCALEMESH_ECS_* settings")
    owns_client = ecs_client is None
    if ecs_client is None:
        import boto3
        from botocore.config import Config

        # Bounded timeouts: a hung ECS call must not hold a worker thread for ever.
        config = Config(connect_timeout=10, read_timeout=30, retries={"mode": "standard"})
        ecs_client = boto3.client("ecs", config=config)
    return EcsRunner(
        ecs_client,
        settings.ecs,
        tokens or BuildTokens(),
        build_token_ttl(settings),
        owns_client=owns_client,
    )


def github_from_settings(settings: Settings) -> GitHubApi | None:
    """The githubkit client when settings.github is set, else None (GitHub features off)."""
    if settings.github is None:
        return None
    # Imported here: githubkit takes most of a second to import, which every CLI command and
    # every process without the App would pay.
    from app.github.client import GitHubAppClient

    return GitHubAppClient(settings.github, settings.github_api_url)


def github_users_from_settings(settings: Settings) -> GitHubUsersApi | None:
    """The githubkit client for "Sign in with GitHub" when the App's client id is set."""
    if settings.oauth is None:
        return None
    from app.github.oauth_client import GitHubUsersClient

    return GitHubUsersClient(
        settings.oauth, web_url=settings.github_web_url, api_url=settings.github_api_url
    )


def log_bus_from_settings(redis: Redis | None) -> LogBus:
    """Redis streams when the app has a Redis client (`SCALEMESH_REDIS_URL`), else memory.

    The lifespan owns and closes that client; the bus only borrows it.
    """
    return RedisLogBus(redis) if redis is not None else MemoryLogBus()


def create_app(
    settings: Settings,
    *,
    runner: BuildRunner | None = None,
    ref_resolver: RefResolver | None = None,
    reconcile: bool = True,
    github: GitHubApi | None = None,
    github_users: GitHubUsersApi | None = None,
    upload_grants: UploadGrants | None = None,
) -> Litestar:
    """The API app. Tests may pass their own runner, resolver, GitHub clients or upload grants,
    or drive the background loops themselves (`reconcile=False`, then
    `app.state.services.reconciler.tick()`, `.reporter.tick()`, `.deliveries.drain()`)."""
    settings.check_part("api")
    engine = database.make_engine(settings.database)
    database.bind(engine)
    storage = storage_from_settings(settings.storage)
    sealer = Sealer(settings.require_secret_keys())
    resolver = ref_resolver or GitRefResolver()
    users = UserService(settings)
    views = DeploymentViews(settings)
    tokens = BuildTokens()
    services = Services()
    # This app's own registry: tests make many apps in one process.
    api_metrics = ApiMetrics()

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
                redis = redis_client(settings.redis_url.reveal())
                stack.push_async_callback(redis.aclose)
            services.announce = announce = aliases.announcer(redis, settings.alias_channel)
            services.bus = bus = log_bus_from_settings(redis)
            stack.push_async_callback(bus.aclose)
            services.runner = build_runner = runner or runner_from_settings(
                settings, bus, tokens=tokens
            )
            stack.push_async_callback(build_runner.aclose)
            grants = upload_grants or upload_grants_from_settings(settings)
            stack.push_async_callback(grants.aclose)
            services.github = github or github_from_settings(settings)
            if services.github is not None:
                stack.push_async_callback(services.github.aclose)
                services.reporter = Reporter(settings, services.github, storage=storage)
            services.github_users = github_users or github_users_from_settings(settings)
            if services.github_users is not None:
                stack.push_async_callback(services.github_users.aclose)
            services.user_tokens = UserTokens(settings.require_secret_keys(), services.github_users)
            services.access = access = Access(services.user_tokens, services.github_users)
            if services.github_users is not None:
                services.github_sign_in = GitHubSignIn(
                    settings, engine, users, services.user_tokens, services.github_users
                )
            lookup = DnsPythonLookup(settings.domains.dns_resolvers)
            rechecks = DomainRechecks(lookup, settings.domains, announce)
            stack.push_async_callback(rechecks.aclose)
            retention = Retention(storage, announce, settings.retention)
            stack.push_async_callback(retention.aclose)
            services.reconciler = reconciler = Reconciler(
                settings,
                engine,
                storage,
                bus,
                build_runner,
                sealer,
                announce,
                services.github,
                tokens=tokens,
                on_finished=api_metrics.build_finished,
                domains=rechecks,
                retention=retention,
            )
            services.builds = BuildChannel(
                tokens,
                reconciler.specs,
                grants,
                bus,
                settings.build_limits,
                build_token_ttl(settings),
            )
            services.projects = ProjectService(settings, engine, sealer, storage, announce, access)
            services.deployments = DeploymentService(
                engine, views, resolver, reconciler, announce, bus, storage, access, services.github
            )
            services.previews = PreviewService(settings, announce, access)
            services.domains = domains = DomainService(settings, engine, access, lookup, announce)
            services.dashboard = Dashboard(
                settings, users, services.projects, services.deployments, services.previews, domains
            )
            services.deliveries = deliveries = DeliveryWorker(
                HandlerContext(settings, engine, reconciler, announce, services.github),
                webhook_router(),
            )
            app.state.services = services
            # Registered before the loops: they stop first, so no pass beats after this goes.
            stack.push_async_callback(reconciler.replica.stop)
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

    def health_warnings() -> list[str]:
        from app.runners.local import LocalRunner

        unsafe = isinstance(services.runner, LocalRunner) and services.runner.unsafe
        return [UNSAFE_BUILDS] if unsafe else []

    def provide(value: object) -> Provide:
        return Provide(lambda: value, sync_to_thread=False)

    return Litestar(
        route_handlers=[
            *health.ROUTES,
            *config_schema.ROUTES,
            *metrics_route.ROUTES,
            UserController,
            AccountsController,
            TokenController,
            GitHubSignInController,
            ProjectController,
            EnvController,
            DomainController,
            DeploymentController,
            *preview_routes.ROUTES,
            *logstream.ROUTES,
            *PAGES,
            *edge.ROUTES,
            InternalBuildController,
        ],
        middleware=[pages.BrowserPages],
        lifespan=[lifespan],
        dependencies={
            "settings": provide(settings),
            "api_metrics": provide(api_metrics),
            "storage": provide(storage),
            "users": provide(users),
            "api_tokens": provide(users.tokens),
            "log_bus": Provide(lambda: services.bus, sync_to_thread=False),
            "projects": Provide(lambda: services.projects, sync_to_thread=False),
            "deployments": Provide(lambda: services.deployments, sync_to_thread=False),
            "deliveries": Provide(lambda: services.deliveries, sync_to_thread=False),
            "dashboard": Provide(lambda: services.dashboard, sync_to_thread=False),
            "github_users": Provide(lambda: services.github_users, sync_to_thread=False),
            "user_tokens": Provide(lambda: services.user_tokens, sync_to_thread=False),
            "previews": Provide(lambda: services.previews, sync_to_thread=False),
            "domains": Provide(lambda: services.domains, sync_to_thread=False),
            "builds": Provide(lambda: services.builds, sync_to_thread=False),
            "access": Provide(lambda: services.access, sync_to_thread=False),
            "github_sign_in": Provide(lambda: services.github_sign_in, sync_to_thread=False),
            "health_checks": Provide(health_checks, sync_to_thread=False),
            "health_warnings": Provide(health_warnings, sync_to_thread=False),
            "dead_letter_count": provide(count_dead),
        },
        signature_types=[
            Settings,
            ApiMetrics,
            Storage,
            LogBus,
            UserService,
            ApiTokens,
            ProjectService,
            DeploymentService,
            DeliveryWorker,
            Dashboard,
            GitHubUsersApi,
            UserTokens,
            PreviewService,
            DomainService,
            Access,
            GitHubSignIn,
            BuildChannel,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[metrics_route.request_counter(api_metrics)],
        before_request=_guards(
            CrossSiteGuard(settings.public_url), refuse_nul_characters, refuse_undecodable_json
        ),
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=openapi_config(VERSION),
        plugins=[StrictStructSchemaPlugin()],
        logging_config=None,
        debug=False,
    )


def _guards(
    *guards: Callable[[Request[Any, Any, Any]], Awaitable[None]],
) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """One `before_request` hook running each guard in turn; each refuses by raising."""

    async def check(request: Request[Any, Any, Any]) -> None:
        for guard in guards:
            await guard(request)

    return check


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app_from_env() -> Litestar:
    """Entry point for `uvicorn --factory`: read settings when the worker starts."""
    return create_app(Settings.from_env())
