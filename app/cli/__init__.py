"""The `scalemesh` command: run everything locally, serve one part in production, administer.

Results go to stdout, JSON logs and human hints to stderr. Exit codes: 0 done, 1 the command
failed (message on stderr), 2 bad usage or configuration, 130 interrupted at a prompt.

This module is the parser and the entry point; the commands are in `app.cli.serving` (dev,
serve), `app.cli.admin` (migrate, user create, settings), `app.cli.storage_admin` (storage
sweep), `app.client.commands` (the client) and `app.client.domains` (custom domains).

The server and admin commands are named here as `module:function` and imported only when they
run: the API and the proxy take seconds to import, and a client command or `user create`
needs neither (the CLI tests start the command hundreds of times).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from app.cli.common import CommandError
from app.client import ClientError
from app.client.commands import add_commands
from app.client.domains import add_domain_commands
from app.client.envs import add_env_commands
from app.client.projects import add_project_commands
from app.errors import UserError
from app.migration_errors import MigrationError, NotMigrated
from app.settings_parts import SettingsError

API_PORT = 8000
PROXY_PORT = 8080
DEFAULT_PORTS = {"api": API_PORT, "proxy": PROXY_PORT}

Handler = Callable[[argparse.Namespace], int]


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
    dev.set_defaults(handler="app.cli.serving:dev")

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
        served.set_defaults(handler="app.cli.serving:serve")

    _command(commands, "migrate", "Apply database migrations not applied yet.").set_defaults(
        handler="app.cli.admin:migrate"
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
    create.add_argument(
        "--admin",
        action="store_true",
        help="make the account an admin (the first account always is); works whatever "
        "SCALEMESH_SIGNUP says",
    )
    create.set_defaults(handler="app.cli.admin:user_create")

    _command(commands, "settings", "Print every setting, secrets masked.").set_defaults(
        handler="app.cli.admin:print_settings"
    )
    add_commands(commands, _command)
    add_project_commands(commands, _command)
    add_env_commands(commands, _command)
    add_domain_commands(commands, _command)
    _add_storage_commands(commands)
    return parser


def _add_storage_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    storage = _command(commands, "storage", "Operator commands on storage.")
    actions = storage.add_subparsers(dest="storage_command", required=True, metavar="ACTION")
    summary = (
        "Delete files under __outputs/ and __logs/ that no live deployment references "
        "(crash leftovers, deleted projects), and the build caches under __cache/ of deleted "
        "projects."
    )
    run = _command(actions, "sweep", summary)
    run.add_argument("--dry-run", action="store_true", help="name what would go; delete nothing")
    run.add_argument("--all", action="store_true", help="go on until the end, batch by batch")
    run.add_argument("--batch", type=int, default=1000, help="objects per batch (%(default)s)")
    run.set_defaults(handler="app.cli.storage_admin:storage_sweep")


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
    try:
        return _handler(args.handler)(args)
    except SettingsError as exc:
        return _fail(f"configuration error: {exc}", status=2)
    except (
        CommandError,
        NotMigrated,
        MigrationError,
        UserError,
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


def _handler(named: Handler | str) -> Handler:
    # The client's commands are functions; the others are `module:function`, imported now.
    if callable(named):
        return named
    module, _, name = named.partition(":")
    handler: Handler = getattr(importlib.import_module(module), name)
    return handler


def _fail(message: str, status: int = 1) -> int:
    print(f"scalemesh: {message}", file=sys.stderr)
    return status
