"""`scalemesh project create|show|set`: make a project, print its settings, change them.

The one setting `set` changes so far is the previews' time to live (`--preview-ttl-days`):
days a preview may go without a push before it is torn down; `none` hands the choice back to
the repository's `previews.ttlDays`. The API checks the value and its answer says what is wrong.
"""

from __future__ import annotations

import argparse
import sys

from app.client.answers import ProjectAnswer
from app.client.api import project_path, session
from app.client.commands import AddCommand

FROM_REPOSITORY = "not set (the repository's previews.ttlDays, else previews stay)"


def ttl_days(raw: str) -> int | None:
    """`--preview-ttl-days`: a whole number of days, or `none`."""
    if raw.strip().lower() == "none":
        return None
    try:
        return int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a whole number of days (1 to 3650) or none"
        ) from None


def ttl_text(days: int | None) -> str:
    return FROM_REPOSITORY if days is None else f"{days} days without a push"


def _create(args: argparse.Namespace) -> int:
    body: dict[str, object] = {
        "name": args.name,
        "repo": args.repo,
        "production_branch": args.branch,
    }
    for field in (
        "root_directory",
        "install_command",
        "build_command",
        "output_directory",
        "preview_ttl_days",
    ):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    with session() as api:
        project = api.answer(ProjectAnswer, "POST", "/project", body=body)
    print(f"Created {project.slug}: production at {project.production_url}")
    print(f"Deploy it with: scalemesh deploy {project.slug}", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    with session() as api:
        project = api.answer(ProjectAnswer, "GET", project_path(args.project))
    print(f"project           {project.slug}")
    print(f"repository        {project.repo}")
    print(f"production        {project.production_url}")
    print(f"preview TTL       {ttl_text(project.preview_ttl_days)}")
    return 0


def _set(args: argparse.Namespace) -> int:
    body = {"preview_ttl_days": args.preview_ttl_days}
    with session() as api:
        project = api.answer(ProjectAnswer, "PATCH", project_path(args.project), body=body)
    print(f"Preview TTL of {project.slug}: {ttl_text(project.preview_ttl_days)}")
    return 0


def add_project_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], command: AddCommand
) -> None:
    """Add `scalemesh project ...` to the parser; `command` adds one subcommand."""
    project = command(commands, "project", "Manage a project.")
    actions = project.add_subparsers(dest="project_command", required=True, metavar="ACTION")
    create = command(actions, "create", "Create a project that builds a git repository.")
    create.add_argument("name", help="the project's name; its URL name (slug) comes from it")
    create.add_argument("--repo", required=True, help="GitHub owner/name, or a git URL")
    create.add_argument("--branch", default="main", help="production branch (%(default)s)")
    for option, dest, metavar, what in (
        ("--root-dir", "root_directory", "DIR", "the app's directory inside the repository"),
        ("--install-command", "install_command", "COMMAND", "default: auto-detected"),
        ("--build-command", "build_command", "COMMAND", "default: auto-detected"),
        ("--output-dir", "output_directory", "DIR", "where the build writes the site"),
    ):
        create.add_argument(option, dest=dest, metavar=metavar, help=what)
    create.add_argument(
        "--preview-ttl-days",
        type=ttl_days,
        metavar="DAYS",
        help="tear a preview down after DAYS (1 to 3650) without a push "
        "(default: the repository's previews.ttlDays, else never)",
    )
    create.set_defaults(handler=_create)

    show = command(actions, "show", "Print a project's settings.")
    show.add_argument("project", help="the project's slug")
    show.set_defaults(handler=_show)

    change = command(actions, "set", "Change a project's settings (admins).")
    change.add_argument("project", help="the project's slug")
    change.add_argument(
        "--preview-ttl-days",
        type=ttl_days,
        required=True,
        metavar="DAYS",
        help="tear a preview down after DAYS (1 to 3650) without a push; "
        "none: follow the repository's previews.ttlDays, else never",
    )
    change.set_defaults(handler=_set)
