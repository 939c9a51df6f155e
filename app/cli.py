"""The `scalemesh` command: run everything locally, serve one part in production, administer.

Results go to stdout, JSON logs and human hints to stderr. Exit codes: 0 done, 1 the command
failed (message on stderr), 2 bad usage or configuration, 130 interrupted at a prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import uvicorn
from granian import Granian
from granian.constants import Interfaces, Loops
from granian.log import LogLevels

from app import database, logconfig
from app.asgi import NotMigrated, create_app
from app.client import ClientError
from app.client.commands import add_commands
from app.errors import ApiError
from app.settings import VARIABLES, Settings, SettingsError
from app.users import create_user, normalise_email
from proxy.asgi import create_proxy

API_PORT = 8000
PROXY_PORT = 8080
GRACEFUL_SHUTDOWN_S = 10
"""How long a stopping server waits for open requests (a log stream, say) before cutting them."""
FORCED_APP_SHUTDOWN_S = 5
"""After a second Ctrl-C, how long the apps still get to close their clients."""

FACTORIES = {
    "api": "app.asgi:create_app_from_env",
    "proxy": "proxy.asgi:create_proxy_from_env",
}
DEFAULT_PORTS = {"api": API_PORT, "proxy": PROXY_PORT}
PROXY_SERVER = "granian"
"""The ASGI server `scalemesh serve proxy` runs, chosen by `bench/proxy.py`: granian's HTTP layer
(Rust) leaves more of a core to the proxy's Python than uvicorn's, for more req/s and a lower
p99. `scalemesh dev` keeps uvicorn: it runs the API and the proxy in one process and loop,
which granian does not offer outside an experimental API, and speed does not matter there."""
PART_NAMES = {"api": "API", "proxy": "proxy"}
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - compared to, not bound

Handler = Callable[[argparse.Namespace], int]
_T = TypeVar("_T")


class CommandError(Exception):
    """The command cannot go on; the message says why and what to do, without a traceback."""


class StartupFailed(CommandError):
    """A server could not start; uvicorn has logged why (port taken, app startup failed)."""


# Parsing ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scalemesh",
        description="Scale Mesh: build every push, serve it at its own URL.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = _command(commands, "dev", "Run the API and the proxy together on embedded defaults.")
    dev.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    dev.add_argument("--api-port", type=_port, default=API_PORT, help="API port (%(default)s)")
    dev.add_argument(
        "--proxy-port", type=_port, default=PROXY_PORT, help="proxy port (%(default)s)"
    )
    dev.set_defaults(handler=_dev)

    serve = _command(commands, "serve", "Serve one part, for production.")
    parts = serve.add_subparsers(dest="part", required=True, metavar="PART")
    for part, what in (("api", "the API and GitHub App"), ("proxy", "deployments by Host")):
        served = _command(parts, part, f"Serve {what}.")
        # Every interface by default: in a container the published port arrives on eth0.
        every_interface = "0.0.0.0"  # noqa: S104
        served.add_argument("--host", default=every_interface, help="address (%(default)s)")
        served.add_argument(
            "--port", type=_port, default=DEFAULT_PORTS[part], help="port (%(default)s)"
        )
        served.add_argument(
            "--workers", type=_positive, default=1, help="worker processes (%(default)s)"
        )
        served.set_defaults(handler=_serve)

    _command(commands, "migrate", "Apply database migrations not applied yet.").set_defaults(
        handler=_migrate
    )

    user = _command(commands, "user", "Manage user accounts.")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    create = _command(user_commands, "create", "Create an account (prompts for the password).")
    create.add_argument("email", help="the account's email address")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input, for scripts",
    )
    create.set_defaults(handler=_user_create)

    _command(commands, "settings", "Print every setting, secrets masked.").set_defaults(
        handler=_settings
    )
    add_commands(commands, _command)
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    # `help` is the line in the parent's list, `description` the opening of its own --help.
    return commands.add_parser(name, help=summary, description=summary)


def _port(raw: str) -> int:
    port = _number(raw)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port (0-65535)")
    return port


def _positive(raw: str) -> int:
    number = _number(raw)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} must be 1 or more")
    return number


def _number(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None


# Entry point --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except SettingsError as exc:
        return _fail(f"configuration error: {exc}", status=2)
    except (
        CommandError,
        NotMigrated,
        database.MigrationError,
        ApiError,
        ClientError,
    ) as exc:
        return _fail(str(exc))
    except OSError as exc:
        # An unreachable database or an unwritable data directory: say so, not a traceback.
        return _fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
    except KeyboardInterrupt:
        # Ctrl-C at a prompt or before the servers run: end the line, stay quiet otherwise.
        print(file=sys.stderr)
        return 130


def _fail(message: str, status: int = 1) -> int:
    print(f"scalemesh: {message}", file=sys.stderr)
    return status


def _start(settings: Settings, *, admin: bool = False) -> None:
    level = settings.log_level
    if admin and level == "INFO":
        # An admin command's results are its output; info logs would only repeat them.
        level = "WARNING"
    logconfig.configure(level)


# Commands -----------------------------------------------------------------------------------


def _dev(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    _start(settings)

    async def run() -> int:
        await database.migrate(database.make_engine(settings.database))
        # Built after migrating: the app binds the tables to its own engine.
        api = _server("API", create_app(settings), args.host, args.api_port)
        proxy = _server("proxy", create_proxy(settings), args.host, args.proxy_port)
        await _serve_together([api, proxy], announce=lambda: _announce_dev(settings, api, proxy))
        return 0

    # Returned straight from the loop: after a signal, coverage on Python 3.11 may stop
    # tracing this frame, and a line after `_run` would look unrun though it runs.
    return _run(run())


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    _start(settings)
    if args.part == "proxy":
        return _serve_proxy(settings, args)
    if args.workers > 1:
        # Refuse in the parent, once, rather than in every worker as it starts.
        _run(_require_migrated(settings))
        uvicorn.run(
            FACTORIES["api"],
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            proxy_headers=True,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            # Workers are fresh processes: give them the same JSON logging as this one.
            log_config=logconfig.dict_config(settings.log_level),
        )
        return 0
    server = _server(PART_NAMES["api"], create_app(settings), args.host, args.port)

    async def run() -> int:
        await _require_migrated(settings)
        await _serve_together([server])
        return 0

    return _run(run(), server.config)  # see `_dev` on why nothing follows `_run`


def _serve_proxy(settings: Settings, args: argparse.Namespace) -> int:
    """The proxy under granian (see `PROXY_SERVER`): workers are processes, one per core helps.

    Granian's main process binds the port, watches the workers and turns SIGINT/SIGTERM into
    a graceful stop; each worker builds the app from the environment, as uvicorn's would.
    """
    server = Granian(
        FACTORIES["proxy"],
        factory=True,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.uvloop,
        # Deployments are static files; the app refuses a websocket anyway.
        websockets=False,
        # Ours replaces granian's handlers, so its own lines come out as JSON on stderr too.
        log_dictconfig=logconfig.dict_config(settings.log_level),
        log_level=LogLevels(settings.log_level.lower()),
        workers_kill_timeout=GRACEFUL_SHUTDOWN_S,
    )
    try:
        server.serve()
    except RuntimeError as exc:
        # Granian's Rust side reports a port in use (and other socket errors) this way, with a
        # Rust backtrace after the first line.
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise StartupFailed(
            f"could not start the proxy on {args.host}:{args.port}: {reason}"
        ) from None
    return 0


def _migrate(_: argparse.Namespace) -> int:
    settings = Settings.from_env()
    _start(settings, admin=True)
    applied = _run(database.migrate(database.make_engine(settings.database)))
    for name in applied:
        print(name)
    if not applied:
        print("database is up to date")
    return 0


def _user_create(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    _start(settings, admin=True)
    _run(_require_migrated(settings))
    # Check the email before asking for a password the command would then throw away.
    email = normalise_email(args.email)
    password = _password_from_stdin() if args.password_stdin else _password_from_prompt()
    user = _run(create_user(email, password))
    print(f"created user {user.id} {user.email}")
    return 0


def _settings(_: argparse.Namespace) -> int:
    described = Settings.from_env().describe()
    # In the order of the index in `app.settings`, which groups related variables.
    order = {name: index for index, name in enumerate(VARIABLES)}
    for name in sorted(described, key=lambda name: order.get(name, len(order))):
        print(f"{name}={described[name]}")
    return 0


# Helpers ------------------------------------------------------------------------------------


async def _require_migrated(settings: Settings) -> None:
    engine = database.make_engine(settings.database)
    database.bind(engine)
    pending = await database.pending_migrations(engine)
    if pending:
        raise NotMigrated(
            f"the database is missing {len(pending)} migration(s); run `scalemesh migrate` first"
        )


def _password_from_stdin() -> str:
    line = sys.stdin.readline()
    if not line:
        raise CommandError("no password on standard input")
    return line.removesuffix("\n").removesuffix("\r")


def _password_from_prompt() -> str:
    try:
        password = getpass.getpass("Password: ")
        again = getpass.getpass("Password (again): ")
    except EOFError:
        raise CommandError("no password given") from None
    if password != again:
        raise CommandError("the passwords do not match")
    return password


def _run(coroutine: Coroutine[Any, Any, _T], config: uvicorn.Config | None = None) -> _T:
    # Production serving gets the event loop uvicorn would pick (uvloop when installed);
    # admin commands and `dev` are fine with asyncio's own.
    loop_factory = config.get_loop_factory() if config is not None else None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coroutine)


# Serving ------------------------------------------------------------------------------------


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


def _server(name: str, app: Any, host: str, port: int) -> _Server:
    return _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            proxy_headers=True,
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            # None keeps the JSON logging `logconfig.configure` installed.
            log_config=None,
        ),
        name,
    )


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


if __name__ == "__main__":  # pragma: no cover - `python -m app.cli`, used by the tests
    raise SystemExit(main())
