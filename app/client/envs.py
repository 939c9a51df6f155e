"""`scalemesh env set|unset|list`: a project's build env vars and the scopes each applies to.

A scope is `production`, `preview`, or one branch's previews (`--branch NAME`, shown as
`branch:NAME`); a value set without one is for production and preview. Values are write-only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from urllib.parse import quote

from app.client import ClientError
from app.client.answers import EnvVarAnswer
from app.client.api import project_path, session
from app.client.commands import AddCommand

EVERYWHERE = "production, preview"
"""What a value set without a scope is for."""


def env_path(slug: str, name: str | None = None) -> str:
    path = f"{project_path(slug)}/env"
    return path if name is None else f"{path}/{quote(name, safe='')}"


def _scopes(args: argparse.Namespace) -> list[str]:
    return [*args.scope, *(f"branch:{branch}" for branch in args.branch)]


def _set(args: argparse.Namespace) -> int:
    values: dict[str, str] = {}
    for pair in args.pairs:
        name, equals, value = pair.partition("=")
        if not equals:
            raise ClientError(f"{pair!r} is not NAME=VALUE")
        values[name] = value
    scopes = _scopes(args)
    with session() as api:
        for name, value in values.items():
            api.call("PUT", env_path(args.project, name), body={"value": value, "scopes": scopes})
    print(
        f"Set {', '.join(values)} on {args.project} for {', '.join(scopes) or EVERYWHERE}; "
        "the next deployment uses the change."
    )
    return 0


def _unset(args: argparse.Namespace) -> int:
    scopes = _scopes(args)
    with session() as api:
        for name in args.names:
            api.call("DELETE", env_path(args.project, name), params={"scope": scopes})
    where = f"from {', '.join(scopes)}" if scopes else "from every scope"
    print(
        f"Unset {', '.join(args.names)} {where} on {args.project}; "
        "the next deployment uses the change."
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    with session() as api:
        found = api.answer(list[EnvVarAnswer], "GET", env_path(args.project))
    if not found:
        print(f"{args.project} has no env vars", file=sys.stderr)
        return 0
    width = max(len("NAME"), *(len(var.name) for var in found))
    print(f"{'NAME':<{width}}  SCOPES")
    for var in found:
        print(f"{var.name:<{width}}  {', '.join(var.scopes)}")
    return 0


def add_env_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], command: AddCommand
) -> None:
    """Add `scalemesh env ...` to the parser; `command` adds one subcommand."""
    env = command(commands, "env", "Manage a project's build env vars and their scopes.")
    actions = env.add_subparsers(dest="env_command", required=True, metavar="ACTION")

    def action(
        name: str, summary: str, handler: Callable[[argparse.Namespace], int], *, scoped: bool
    ) -> argparse.ArgumentParser:
        parser = command(actions, name, summary)
        parser.add_argument("project", help="the project's slug")
        parser.set_defaults(handler=handler)
        if scoped:
            parser.add_argument(
                "--scope",
                action="append",
                default=[],
                metavar="SCOPE",
                help="production, preview or branch:NAME (repeatable)",
            )
            parser.add_argument(
                "--branch",
                action="append",
                default=[],
                metavar="NAME",
                help="that branch's preview deployments (repeatable); they override preview",
            )
        return parser

    action(
        "set",
        f"Set env vars (values are write-only); without a scope, for {EVERYWHERE}.",
        _set,
        scoped=True,
    ).add_argument("pairs", nargs="+", metavar="NAME=VALUE")
    action(
        "unset", "Delete env vars from the scopes given, or from every scope.", _unset, scoped=True
    ).add_argument("names", nargs="+", metavar="NAME")
    action("list", "List a project's env var names and their scopes.", _list, scoped=False)
