"""The client commands (login, projects, deploy, logs, rollback...) and their arguments."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec

from app.client import ClientError
from app.client.answers import (
    DeploymentAnswer,
    PinAnswer,
    ProjectAnswer,
    TokenAnswer,
    UnpinnedAnswer,
    UserAnswer,
)
from app.client.api import EXPIRED, Api, deployment_path, project_path, session
from app.client.config import DEFAULT_API, Config, check_api_url, config_path, save_config
from app.client.follow import LogPrinter, follow
from app.client.github_login import device_login
from app.client.reasons import explain
from app.client.repository import choose_project, local_repos
from builder.events import LogEvent

TOKEN_VARIABLE = "SCALEMESH_TOKEN"  # noqa: S105 - the variable's name, not a token
"""Where `scalemesh login --token` looks first for an API token (CI sets it from a secret)."""
TICK_S = 0.5
"""How often the live step line on a terminal redraws its clock."""

AddCommand = Callable[
    ["argparse._SubParsersAction[argparse.ArgumentParser]", str, str], argparse.ArgumentParser
]


def _login(args: argparse.Namespace) -> int:
    api = check_api_url(args.api)
    if args.github:
        if args.email or args.password_stdin or args.token:
            raise ClientError(
                "--github signs in on GitHub: leave out --email, --password-stdin and --token"
            )
        with Api(api) as http:
            token = device_login(http)
        path = config_path(os.environ)
        save_config(path, Config(api, token))
        print(f"Logged in to {api} with GitHub; the session is saved in {path}.")
        return 0
    if args.token:
        return _login_with_token(api)
    email = args.email or _read_line("Email: ", "no email given")
    if args.password_stdin:
        password = _read_line("", "no password on standard input")
    else:
        try:
            password = getpass.getpass("Password: ")
        except EOFError:
            print(file=sys.stderr)  # end the prompt's line before the message
            raise ClientError("no password given") from None
    with Api(api) as http:
        answer = http.json("POST", "/user/login", body={"email": email, "password": password})
    try:
        token = msgspec.convert(answer, TokenAnswer).token
    except msgspec.ValidationError:
        token = ""
    if not token:
        raise ClientError(f"{api} answered the login without a token; is it a Scale Mesh API?")
    path = config_path(os.environ)
    save_config(path, Config(api, token))
    print(f"Logged in to {api} as {email}; the session is saved in {path}.")
    return 0


def _login_with_token(api: str) -> int:
    """Save an API token (from `SCALEMESH_TOKEN`, standard input or a prompt) once it works."""
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token and sys.stdin.isatty():
        try:
            token = getpass.getpass("API token: ").strip()
        except EOFError:
            print(file=sys.stderr)  # end the prompt's line before the message
            raise ClientError("no API token given") from None
    elif not token:
        token = _read_line("", "no API token on standard input").strip()
    if not token:
        raise ClientError("no API token given")
    with Api(api, token) as http:
        try:
            user = http.answer(UserAnswer, "GET", "/user")
        except ClientError as exc:
            if str(exc) == EXPIRED:
                raise ClientError(
                    f"{api} does not accept this token (mistyped, expired or deleted); "
                    "make a new one with POST /tokens"
                ) from None
            raise
    path = config_path(os.environ)
    save_config(path, Config(api, token))
    print(f"Logged in to {api} as {user.email} with an API token; it is saved in {path}.")
    return 0


def _read_line(prompt: str, missing: str) -> str:
    if prompt:
        print(prompt, end="", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    if prompt and not line:
        print(file=sys.stderr)  # end the prompt's line before the message
    if not line.strip():
        raise ClientError(missing)
    return line.removesuffix("\n").removesuffix("\r")


def _projects(_: argparse.Namespace) -> int:
    with session() as api:
        projects = api.answer(list[ProjectAnswer], "GET", "/projects")
    if not projects:
        print("No projects yet: scalemesh project create NAME --repo REPO", file=sys.stderr)
        return 0
    rows = [("SLUG", "PRODUCTION URL", "REPO")]
    rows += [(p.slug, p.production_url, p.repo) for p in projects]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for slug, url, repo in rows:
        print(f"{slug:<{widths[0]}}  {url:<{widths[1]}}  {repo}")
    for project in projects:
        if project.production_pin is not None:
            print(pinned_line(project.slug, project.production_pin))
    return 0


def pinned_line(slug: str, pin: PinAnswer) -> str:
    """What a pinned production serves, since when, by whom, and how to unpin it."""
    by = "" if pin.by is None else f" by {pin.by}"
    return (
        f"{slug}: production is pinned to {pin.deployment} since {pin.since}{by}; "
        f"pushes build but do not go live until: scalemesh unpin {slug}"
    )


def _deploy(args: argparse.Namespace) -> int:
    with session() as api:
        slug = args.project
        if slug is None:
            cwd = Path.cwd()
            projects = api.answer(list[ProjectAnswer], "GET", "/projects")
            slug = choose_project(projects, local_repos(cwd), cwd)
        body: dict[str, object] = {"project": slug}
        if args.ref is not None:
            body["ref"] = args.ref
        if args.clear_cache:
            body["clear_cache"] = True
        deployment = api.answer(DeploymentAnswer, "POST", "/deploy", body=body)
        where = deployment.branch or deployment.ref
        print(f"Deploying {slug} ({where} @ {deployment.sha[:7]}): {deployment.id}")
        print(f"URL  {deployment.url}")
        print(f"Log  {deployment.log_url}", flush=True)
        return follow_to_the_end(api, deployment.id) if args.follow else 0


def _logs(args: argparse.Namespace) -> int:
    with session() as api:
        if args.follow:
            return follow_to_the_end(api, args.deployment)
        text = api.call("GET", f"{deployment_path(args.deployment)}/logs").text
    sys.stdout.write(text)
    return 0


def follow_to_the_end(api: Api, deployment_id: str) -> int:
    """Stream the log to stdout; 0 when the deployment is ready or skipped, else ClientError."""
    out = sys.stdout
    printer = LogPrinter(out, live=out.isatty())

    async def run() -> LogEvent:
        # asyncio.run cancels the ticker when `follow` returns or fails.
        _ticker = asyncio.create_task(_tick(printer)) if printer.live else None
        return await follow(api.base, api.token or "", deployment_id, printer)

    try:
        result = asyncio.run(run())
    finally:
        printer.close()
    state = result.get("state")
    if state == "skipped":
        # Not a failure: the project's own rules said there was nothing to deploy.
        print(f"Skipped: {result.get('error') or 'nothing to deploy'} (nothing was deployed)")
        return 0
    if state != "ready":
        raise ClientError(explain(result))
    deployment = api.answer(DeploymentAnswer, "GET", deployment_path(deployment_id))
    print(f"Ready: {deployment.url}")
    # `aliases` lists the deployment's own URL too.
    for alias in [url for url in deployment.aliases if url != deployment.url]:
        print(f"  also {alias}")
    return 0


async def _tick(printer: LogPrinter) -> None:
    while True:
        await asyncio.sleep(TICK_S)
        printer.tick()


def _rollback(args: argparse.Namespace) -> int:
    with session() as api:
        project = api.answer(ProjectAnswer, "GET", project_path(args.project))
        slug = project.slug
        if args.deployment is not None:
            target = api.answer(DeploymentAnswer, "GET", deployment_path(args.deployment))
            if target.project != slug:
                raise ClientError(f"deployment {target.id} belongs to {target.project}, not {slug}")
        else:
            target = _previous(api, slug, project.production_url)
        promoted = api.answer(DeploymentAnswer, "POST", f"{deployment_path(target.id)}/promote")
        after = api.answer(ProjectAnswer, "GET", project_path(slug))
    where = promoted.branch or promoted.ref
    print(
        f"Production of {slug} now serves {promoted.id} ({where} @ {promoted.sha[:7]}): "
        f"{project.production_url}"
    )
    if after.production_pin is not None:
        print(pinned_line(slug, after.production_pin))
    return 0


def _unpin(args: argparse.Namespace) -> int:
    with session() as api:
        answer = api.answer(
            UnpinnedAnswer, "DELETE", f"{project_path(args.project)}/production-pin"
        )
    if answer.production is None:
        print(f"Production of {args.project} is unpinned; no production deployment is ready yet")
        return 0
    served = answer.production
    print(
        f"Production of {args.project} is unpinned and serves {served.id} "
        f"({served.branch or served.ref} @ {served.sha[:7]}); pushes go live again"
    )
    return 0


def _previous(api: Api, slug: str, production_url: str) -> DeploymentAnswer:
    """The newest ready deployment older than the one production serves now."""
    current: DeploymentAnswer | None = None
    for deployment in api.pages(DeploymentAnswer, f"{project_path(slug)}/deployments"):
        if current is None:
            current = deployment if production_url in deployment.aliases else None
        elif deployment.state == "ready":
            return deployment
    if current is None:
        raise ClientError(f"production of {slug} serves no deployment yet; deploy it first")
    raise ClientError(
        f"no ready deployment of {slug} is older than the one in production ({current.id})"
    )


# --- parsing ----------------------------------------------------------------------------------


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], command: AddCommand
) -> None:
    """Add the client commands to the `scalemesh` parser; `command` adds one subcommand."""
    login = command(commands, "login", "Sign in to a Scale Mesh API and save the session.")
    login.add_argument("--api", default=DEFAULT_API, help="the API's URL (%(default)s)")
    login.add_argument("--email", help="your account's email (prompted for when left out)")
    login.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input, for scripts",
    )
    login.add_argument(
        "--token",
        action="store_true",
        help=f"log in with an API token (from ${TOKEN_VARIABLE}, standard input or a prompt) "
        "instead of a password, e.g. in CI",
    )
    login.add_argument(
        "--github",
        action="store_true",
        help="sign in with GitHub instead: open a GitHub page and enter the code shown",
    )
    login.set_defaults(handler=_login)

    command(commands, "projects", "List your projects.").set_defaults(handler=_projects)

    deploy = command(commands, "deploy", "Deploy a project and print its URL.")
    deploy.add_argument(
        "project",
        nargs="?",
        help="the project's slug (default: the one building the git repository here, "
        "or your only project)",
    )
    deploy.add_argument("--ref", help="a branch, tag or full sha (default: production branch)")
    deploy.add_argument(
        "--follow", action="store_true", help="stream the build log; fail if the build fails"
    )
    deploy.add_argument(
        "--clear-cache",
        action="store_true",
        help="build without restoring the build cache (a fresh one is saved)",
    )
    deploy.set_defaults(handler=_deploy)

    logs = command(commands, "logs", "Print a deployment's build log.")
    logs.add_argument("deployment", help="the deployment's id")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="stream the log until the deployment ends"
    )
    logs.set_defaults(handler=_logs)

    rollback = command(commands, "rollback", "Serve an earlier deployment in production.")
    rollback.add_argument("project", help="the project's slug")
    rollback.add_argument(
        "deployment",
        nargs="?",
        help="the deployment to serve (default: the newest ready one older than production's)",
    )
    rollback.set_defaults(handler=_rollback)

    unpin = command(
        commands, "unpin", "Let production follow pushes again after a rollback (serve the newest)."
    )
    unpin.add_argument("project", help="the project's slug")
    unpin.set_defaults(handler=_unpin)
