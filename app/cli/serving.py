"""`scalemesh dev` and `scalemesh serve`: the API and the proxy under uvicorn.

`dev` runs both in one process and one event loop; `serve` runs one part, with worker
processes if asked. Every server stops on SIGINT or SIGTERM, the others with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import uvicorn

from app import database, logconfig
from app.cli.common import CommandError, run_coroutine, start_logging
from app.runners.api import RunnerError
from app.runners.sandbox_choice import choose_sandbox
from app.settings import Runner, Settings

GRACEFUL_SHUTDOWN_S = 10
"""How long a stopping server waits for open requests (a log stream, say) before cutting them."""
FORCED_APP_SHUTDOWN_S = 5
"""After a second Ctrl-C, how long the apps still get to close their clients."""

FACTORIES = {
    "api": "app.asgi:create_app_from_env",
    "proxy": "proxy.asgi:create_proxy_from_env",
}
PROXY_SERVER = "uvicorn"
"""The server `scalemesh serve proxy` runs, chosen by `bench/proxy.py` (granian beside it)."""
PROXY_PROTOCOL = "proxy.replaying_protocol:ReplayingProtocol"
"""uvicorn's HTTP/1.1 protocol with the proxy's remembered answers written without a task:
with it uvicorn serves more req/s than granian, whose ASGI bridge costs more per request than
the proxy's whole replay (`bench/proxy.py`)."""
PART_NAMES = {"api": "API", "proxy": "proxy"}
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - compared to, not bound


class StartupFailed(CommandError):
    """A server could not start; uvicorn has logged why (port taken, app startup failed)."""


def dev(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    settings.check_part("api")  # the API's keys cover the proxy's
    refuse_without_sandbox(settings)
    start_logging(settings)

    # Imported here, not at the top: `serve proxy` builds no API, `serve api` no proxy, and
    # uvicorn's workers build theirs from `FACTORIES`; each takes a second.
    from app.asgi import create_app
    from proxy.asgi import create_proxy

    async def run() -> int:
        await database.migrate(database.make_engine(settings.database))
        # Built after migrating: the app binds the tables to its own engine.
        api = _server("API", create_app(settings), args.host, args.api_port)
        proxy = _server("proxy", create_proxy(settings), args.host, args.proxy_port)
        await _serve_together([api, proxy], announce=lambda: _announce_dev(settings, api, proxy))
        return 0

    # Returned straight from the loop: after a signal, coverage on Python 3.11 may stop
    # tracing this frame, and a line after `run_coroutine` would look unrun though it runs.
    return run_coroutine(run())


def serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    # Before any worker starts: on PostgreSQL a missing key is a configuration error (exit 2).
    settings.check_part(args.part)
    if args.part == "proxy":
        start_logging(settings)
        return _serve_proxy(settings, args)
    refuse_without_sandbox(settings)
    start_logging(settings)
    if args.workers > 1:
        # Refuse in the parent, once, rather than in every worker as it starts.
        run_coroutine(database.require_migrated(database.make_engine(settings.database)))
        _run_workers("api", settings, args, proxy_headers=True)
        return 0
    from app.asgi import create_app  # see `dev` on why here

    server = _server(PART_NAMES["api"], create_app(settings), args.host, args.port)

    async def run() -> int:
        await database.require_migrated(database.make_engine(settings.database))
        await _serve_together([server])
        return 0

    return run_coroutine(run(), server.config)  # see `dev` on why nothing follows


def _run_workers(part: str, settings: Settings, args: argparse.Namespace, **options: Any) -> None:
    """`part` in `args.workers` uvicorn worker processes, each building it from `FACTORIES`."""
    uvicorn.run(
        FACTORIES[part],
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        # Workers are fresh processes: give them the same JSON logging as this one.
        log_config=logconfig.dict_config(settings.log_level),
        **options,
    )


def refuse_without_sandbox(settings: Settings) -> None:
    """Before the API starts: local builds with no sandbox here stop it with one line saying why
    and what to do, not with the app's failed startup (a traceback in the log). The app chooses
    its sandbox again as it starts; with SCALEMESH_UNSAFE_LOCAL_BUILDS=1 that cannot fail."""
    if settings.runner is Runner.LOCAL and not settings.unsafe_local_builds:
        try:
            choose_sandbox(settings)
        except RunnerError as exc:
            raise CommandError(str(exc)) from None


def _serve_proxy(settings: Settings, args: argparse.Namespace) -> int:
    """The proxy under uvicorn with `PROXY_PROTOCOL`; workers are processes, one per core helps.

    The app applies forwarded headers itself (`create_proxy_from_env`), after a replay misses,
    so uvicorn is told not to. There is no access log: each line would cost more than a
    replayed answer, and the protocol leaves every request to uvicorn when one is kept.
    """
    options: dict[str, Any] = {"http": PROXY_PROTOCOL, "proxy_headers": False, "access_log": False}
    if args.workers > 1:
        try:
            _run_workers("proxy", settings, args, **options)
        except SystemExit:
            # uvicorn has logged why (a port in use, say) and exits; say it once, plainly.
            raise StartupFailed(
                f"could not start the proxy on {args.host}:{args.port}; see the log above"
            ) from None
        return 0
    from proxy.asgi import create_proxy_from_env  # see `dev` on why here

    server = _server("proxy", create_proxy_from_env(), args.host, args.port, **options)

    async def run() -> int:
        await _serve_together([server])
        return 0

    return run_coroutine(run(), server.config)  # see `dev` on why nothing follows


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to `_serve_together`.

    Each uvicorn server installs its own SIGINT/SIGTERM handlers and restores the previous ones
    when it stops, then re-raises the signal; with two servers in one process the second
    overwrites the first's handlers, and Ctrl-C stops only one of them.
    """

    def __init__(self, config: uvicorn.Config, name: str) -> None:
        super().__init__(config)
        self.name = name

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self.force_exit:
            # A forced exit only stops waiting for connections; uvicorn would also skip the
            # app's shutdown, leaving its clients open and its lifespan task to be cancelled
            # mid-wait (a logged traceback). Closing clients is quick, so do it, bounded.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lifespan.shutdown(), FORCED_APP_SHUTDOWN_S)


def _server(name: str, app: Any, host: str, port: int, **options: Any) -> _Server:
    settings: dict[str, Any] = {
        "proxy_headers": True,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        **options,
    }
    # None keeps the JSON logging `logconfig.configure` installed.
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", log_config=None, **settings)
    return _Server(config, name)


async def _serve_together(
    servers: Sequence[_Server], announce: Callable[[], None] | None = None
) -> None:
    """Run `servers` in this loop until SIGINT or SIGTERM, then stop every one of them."""
    loop = asyncio.get_running_loop()

    def stop(sig: signal.Signals) -> None:
        for server in servers:
            # As in uvicorn: a second Ctrl-C stops waiting for open connections.
            if server.should_exit and sig is signal.SIGINT:
                server.force_exit = True
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
    try:
        tasks = [_serve_one(server, servers) for server in servers]
        if announce is not None:
            tasks.append(_announce_when_started(servers, announce))
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _serve_one(server: _Server, everyone: Sequence[_Server]) -> None:
    try:
        await server.serve()
    except SystemExit:
        # uvicorn exits the process when a server cannot start; stop the others instead.
        for other in everyone:
            other.should_exit = True
        config = server.config
        raise StartupFailed(
            f"could not start the {server.name} on {config.host}:{config.port}; see the log above"
        ) from None


async def _announce_when_started(servers: Sequence[_Server], announce: Callable[[], None]) -> None:
    while not all(server.started for server in servers):
        if any(server.should_exit for server in servers):
            return
        await asyncio.sleep(0.05)
    announce()


def _announce_dev(settings: Settings, api: _Server, proxy: _Server) -> None:
    lines = [
        "Scale Mesh is running (Ctrl-C to stop):",
        f"  API    {_url(api)}",
        f"  proxy  http://<label>.{settings.root_domain}:{_bound_port(proxy)}",
        f"  data   {settings.data_dir.resolve()}",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _url(server: _Server) -> str:
    host = server.config.host
    host = "127.0.0.1" if host in _WILDCARD_HOSTS else host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{_bound_port(server)}"


def _bound_port(server: _Server) -> int:
    # With --api-port 0 the system picks the port; report the one actually bound.
    sockets = server.servers[0].sockets
    return int(sockets[0].getsockname()[1]) if sockets else server.config.port
