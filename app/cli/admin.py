"""The admin commands: `scalemesh migrate`, `scalemesh user create` and `scalemesh settings`.

Each imports what it needs as it runs: `settings` needs no database driver, and `migrate` no
accounts service, so none waits for the others' imports (the CLI tests start many of them).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from app.cli.common import CommandError, run_coroutine, start_logging
from app.settings import VARIABLES, Settings


def migrate(_: argparse.Namespace) -> int:
    from app import database

    settings = Settings.from_env()
    start_logging(settings, admin=True)
    applied = run_coroutine(database.migrate(database.make_engine(settings.database)))
    for name in applied:
        print(name)
    if not applied:
        print("database is up to date")
    return 0


def user_create(args: argparse.Namespace) -> int:
    from app import database
    from app.users.service import UserService, normalise_email

    settings = Settings.from_env()
    start_logging(settings, admin=True)
    run_coroutine(database.require_migrated(database.make_engine(settings.database)))
    # Check the email before asking for a password the command would then throw away.
    email = normalise_email(args.email)
    password = _password_from_stdin() if args.password_stdin else _password_from_prompt()
    # Whatever SCALEMESH_SIGNUP says: whoever runs this can reach the database anyway.
    user = run_coroutine(UserService(settings).create(email, password, admin=args.admin))
    print(f"created {'admin' if user.is_admin else 'user'} {user.id} {user.email}")
    return 0


def print_settings(_: argparse.Namespace) -> int:
    described = Settings.from_env().describe()
    # In the order of the index in `app.settings`, which groups related variables.
    order = {name: index for index, name in enumerate(VARIABLES)}
    for name in sorted(described, key=lambda name: order.get(name, len(order))):
        print(f"{name}={described[name]}")
    return 0


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
