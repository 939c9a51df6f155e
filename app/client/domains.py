"""`scalemesh domains add|ls|rm|verify`: a project's custom domains, and the DNS records they need.

`add` and `verify` print the exact records to create; `verify` succeeds (exit 0) only once the
domain is verified and points at Scale Mesh, and otherwise says what DNS returned and what it
should return (exit 1), so a script can wait for a domain by running it again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote

from app.client import ClientError
from app.client.answers import DomainAnswer, DomainsAnswer, ProjectAnswer
from app.client.api import Api, project_path, session
from app.client.commands import AddCommand
from app.client.repository import choose_project, local_repos

NAMING = "scalemesh domains ... --project PROJECT"
"""How a domains command is given its project when the directory does not say."""


def domains_path(slug: str, name: str | None = None) -> str:
    path = f"{project_path(slug)}/domains"
    return path if name is None else f"{path}/{quote(name, safe='')}"


def _project(api: Api, given: str | None) -> str:
    """The slug given, else the project building the repository here, else the only one."""
    if given is not None:
        return given
    cwd = Path.cwd()
    projects = api.answer(list[ProjectAnswer], "GET", "/projects")
    return choose_project(projects, local_repos(cwd), cwd, NAMING)


def _table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Columns padded to their widest cell; the last is not padded."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    padded = [
        [*(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=False)), row[-1]] for row in rows
    ]
    return [indent + "  ".join(cells) for cells in padded]


def _named(domain: DomainAnswer) -> str:
    """The name as typed (Unicode), with the ASCII form DNS uses when it differs."""
    if domain.display_name == domain.name:
        return domain.name
    return f"{domain.display_name} ({domain.name})"


def _serves(domain: DomainAnswer) -> str:
    if domain.redirect_to is not None:
        return f"a redirect to {domain.redirect_to}"
    if domain.git_branch is not None:
        return f"branch {domain.git_branch}"
    return "production"


def _live(domain: DomainAnswer) -> bool:
    return domain.state == "verified" and domain.routing == "ok"


def _wrong(domain: DomainAnswer) -> str:
    """What is wrong, on one line: what the last check found, or that none ran yet."""
    detail = " ".join((domain.check_detail or "").split())
    return detail or f"not checked yet: run scalemesh domains verify {domain.name}"


def print_records(domain: DomainAnswer) -> None:
    """The records to create, as a table, and which of them are alternatives."""
    print("Create these DNS records at your DNS provider:")
    rows = [("TYPE", "NAME", "VALUE")]
    rows += [(record.type, record.name, record.value) for record in domain.instructions]
    for line in _table(rows, indent="  "):
        print(line)
    kinds = {record.type for record in domain.instructions}
    if "CNAME" in kinds and kinds & {"A", "AAAA"}:
        print(
            "Point the name at Scale Mesh with the CNAME, or, for a name that cannot have one "
            "(an apex such as example.com), with the A/AAAA records instead: not both."
        )


def _add(args: argparse.Namespace) -> int:
    body = {"name": args.name, "redirect_to": args.redirect_to, "git_branch": args.branch}
    with session() as api:
        slug = _project(api, args.project)
        domain = api.answer(DomainAnswer, "POST", domains_path(slug), body=body)
    # Verified at once when the claim took the name over from another project (DNS proved it).
    until = "" if domain.state == "verified" else " once DNS proves you own it"
    print(f"Added {_named(domain)} to {slug} ({domain.state}): it serves {_serves(domain)}{until}.")
    print_records(domain)
    if not _live(domain):
        print(f"Then run: scalemesh domains verify {domain.name} --project {slug}", file=sys.stderr)
    return 0


def _ls(args: argparse.Namespace) -> int:
    with session() as api:
        slug = _project(api, args.project)
        domains = api.answer(DomainsAnswer, "GET", domains_path(slug)).domains
    if not domains:
        print(f"No domains on {slug} yet: scalemesh domains add NAME", file=sys.stderr)
        return 0
    rows = [("NAME", "STATE", "ROUTING", "SERVES")]
    rows += [(_named(d), d.state, d.routing, _serves(d)) for d in domains]
    for line in _table(rows):
        print(line)
    for domain in domains:
        if not _live(domain):
            print(f"{domain.name}: {_wrong(domain)}")
    return 0


def _rm(args: argparse.Namespace) -> int:
    with session() as api:
        slug = _project(api, args.project)
        api.call("DELETE", domains_path(slug, args.name))
    print(f"Removed {args.name} from {slug}; it is no longer served.")
    return 0


def _verify(args: argparse.Namespace) -> int:
    with session() as api:
        slug = _project(api, args.project)
        domain = api.answer(DomainAnswer, "POST", f"{domains_path(slug, args.name)}/verify")
    if _live(domain):
        print(f"{_named(domain)} is verified and points at Scale Mesh: {domain.url}")
        return 0
    print(f"{_named(domain)}: {domain.state}, routing {domain.routing}")
    print_records(domain)
    raise ClientError(f"{domain.name} is not live yet: {_wrong(domain)}")


def add_domain_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], command: AddCommand
) -> None:
    """Add `scalemesh domains ...` to the parser; `command` adds one subcommand."""
    domains = command(commands, "domains", "Manage a project's custom domains.")
    actions = domains.add_subparsers(dest="domains_command", required=True, metavar="ACTION")

    def action(
        name: str, summary: str, handler: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        parser = command(actions, name, summary)
        parser.add_argument(
            "--project",
            metavar="SLUG",
            help="the project (default: the one building the git repository here, "
            "or your only project)",
        )
        parser.set_defaults(handler=handler)
        return parser

    add = action("add", "Add a custom domain and print the DNS records it needs.", _add)
    add.add_argument("name", help="the domain, e.g. www.example.com")
    add.add_argument(
        "--redirect-to",
        metavar="NAME",
        help="answer with a permanent redirect to this other domain of the project",
    )
    add.add_argument(
        "--branch", metavar="BRANCH", help="serve this branch's deployment instead of production"
    )
    action("ls", "List the project's custom domains and what each needs.", _ls)
    rm = action("rm", "Remove a custom domain; it stops being served at once.", _rm)
    rm.add_argument("name", help="the domain")
    verify = action("verify", "Check a domain's DNS now and say what is missing.", _verify)
    verify.add_argument("name", help="the domain")
