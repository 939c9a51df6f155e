"""The `scalemesh` client commands: sign in to an API, manage projects, deploy and follow logs.

They talk to a Scale Mesh API over HTTP, and to its log websocket (the protocol is described in
`app/logstream.py`). `scalemesh login` saves the API's URL and a session token in a config file
only its owner can read; every other command reads it. A failure is one line on stderr and exit
code 1 (raised here as `ClientError`, printed by `app.cli.main`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from app.logs.text import render_text
from builder.events import LogEvent
from builder.spec import STEPS

DEFAULT_API = "http://localhost:8000"
CONFIG_VARIABLE = "SCALEMESH_CONFIG"
DEFAULT_CONFIG = Path(".config", "scalemesh", "config.json")
"""Under the home directory, unless `SCALEMESH_CONFIG` names another file."""
HTTP_TIMEOUT_S = 30.0
WS_OPEN_TIMEOUT_S = 10.0
WS_MAX_FRAME = 4 * 1024 * 1024
"""The server keeps frames near 256 KiB; this leaves room for one long event past that."""
RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Waits before each reconnection after a dropped log stream; then the command gives up."""
TICK_S = 0.5
"""How often the live step line on a terminal redraws its clock."""
PAGE = 100
"""Deployments per request when searching a project's history (the API's maximum)."""
GIT_TIMEOUT_S = 10.0

EXPIRED = "your session expired; run scalemesh login"
SPINNER = "|/-\\"

# Close codes of the log websocket (see `app.logstream`).
WS_NORMAL = 1000
WS_NOT_SIGNED_IN = 4401
WS_FORBIDDEN = 4403
WS_NOT_FOUND = 4404
WS_LAGGED = 4408

Handler = Callable[[argparse.Namespace], int]
AddCommand = Callable[
    ["argparse._SubParsersAction[argparse.ArgumentParser]", str, str], argparse.ArgumentParser
]


class ClientError(Exception):
    """The command cannot go on; the message says why and what to do, in one line."""


# --- the config file ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Config:
    api: str
    token: str


def config_path(environ: Mapping[str, str]) -> Path:
    chosen = environ.get(CONFIG_VARIABLE, "")
    return Path(chosen).expanduser() if chosen else Path.home() / DEFAULT_CONFIG


def load_config(path: Path) -> Config:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClientError("not logged in; run scalemesh login") from None
    except ValueError:
        raise ClientError(f"{path} is not valid JSON; run scalemesh login") from None
    api, token = (data.get(key) for key in ("api", "token")) if isinstance(data, dict) else ("", "")
    if not isinstance(api, str) or not isinstance(token, str) or not token:
        raise ClientError(f"{path} holds no API and token; run scalemesh login")
    return Config(check_api_url(api), token)


def save_config(path: Path, config: Config) -> None:
    """Write the file whole or not at all, readable by its owner only from its first byte."""
    directory = path.parent
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        pass  # an existing directory may be the user's own (a home dir): leave its mode alone
    else:
        directory.chmod(0o700)
    # mkstemp creates the file with mode 0600, so the token is never readable by others.
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump({"api": config.api, "token": config.token}, file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        os.unlink(temporary)
        raise ClientError(f"cannot save the session in {path} ({exc.strerror or exc})") from None


def check_api_url(raw: str) -> str:
    url = raw.strip().rstrip("/")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [IPv6 address
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ClientError(f"{raw!r} is not an API URL; give one like {DEFAULT_API}")
    return url


# --- HTTP -------------------------------------------------------------------------------------


class Api:
    """The API at `base`, called with `token` (none only to log in)."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base, headers=headers, timeout=HTTP_TIMEOUT_S)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=body, params=params, headers=headers)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise ClientError(
                f"cannot reach the Scale Mesh API at {self.base} ({reason}); "
                "check the URL given to scalemesh login --api"
            ) from None
        if response.is_success:
            return response
        if response.status_code == 401 and self.token:
            raise ClientError(EXPIRED)
        if response.status_code == 404 and not self.token:
            raise ClientError(
                f"there is no Scale Mesh API at {self.base} "
                f"({method} {path} answered 404); check --api"
            )
        detail = _detail(response)
        if detail is None:
            raise ClientError(
                f"{method} {path} answered {response.status_code} {response.reason_phrase}; "
                f"is {self.base} a Scale Mesh API?"
            )
        raise ClientError(detail)

    def json(self, method: str, path: str, **options: Any) -> Any:
        return self._decode(method, path, self.call(method, path, **options))

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                f"{method} {path} did not answer with JSON; is {self.base} a Scale Mesh API?"
            ) from None

    def pages(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following its `Link: rel="next"` headers."""
        url: str | None = path
        params: Mapping[str, int] | None = {"limit": PAGE}
        while url is not None:
            response = self.call("GET", url, params=params)
            yield from self._decode("GET", url, response)
            url = response.links.get("next", {}).get("url")
            params = None  # the next link carries its own


def _detail(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    return detail if isinstance(detail, str) and detail else None


@contextlib.contextmanager
def session() -> Iterator[Api]:
    """The API the user logged in to, with their token."""
    config = load_config(config_path(os.environ))
    with Api(config.api, config.token) as api:
        yield api


def project_path(slug: str) -> str:
    return f"/projects/{quote(slug, safe='')}"


def deployment_path(deployment_id: str) -> str:
    return f"/deployments/{quote(deployment_id, safe='')}"


# --- the log stream ---------------------------------------------------------------------------


class LogPrinter:
    """Prints log events as timestamped lines; on a terminal, keeps a live step line under them."""

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out = out
        self.live = live
        self.step: str | None = None
        self.started = time.monotonic()
        self.frame = 0

    def show(self, event: LogEvent) -> None:
        kind = event.get("type")
        if kind == "step" and event.get("status") == "start":
            self.step = str(event.get("step"))
        elif kind == "end":
            self.step = "publishing"  # the build is over; the app moves the URLs next
        text = render_text([event])
        if not text:
            return  # heartbeats, `lagged`, and kinds newer than this client
        if self.live:
            self.out.write("\r\x1b[K" + text + self.status())
        else:
            self.out.write(text)
        self.out.flush()

    def tick(self) -> None:
        self.frame += 1
        self.out.write("\r\x1b[K" + self.status())
        self.out.flush()

    def status(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        if self.step in STEPS:
            where = f"[{STEPS.index(self.step) + 1}/{len(STEPS)}] {self.step}"
        else:
            where = self.step or "waiting for the build to start"
        return f"{SPINNER[self.frame % len(SPINNER)]} {where}  {elapsed // 60}:{elapsed % 60:02d}"

    def close(self) -> None:
        if self.live:
            self.out.write("\r\x1b[K")
            self.out.flush()


def ws_url(api: str, deployment_id: str, since: int) -> str:
    scheme, rest = api.split("://", 1)
    secure = "wss" if scheme == "https" else "ws"
    return f"{secure}://{rest}{deployment_path(deployment_id)}/logs/ws?since={since}"


async def follow(api: str, token: str, deployment_id: str, printer: LogPrinter) -> LogEvent:
    """Show every event of the deployment's log until its result, and return the result.

    A dropped connection is resumed from the last event shown (`since`), so nothing is shown
    twice or lost; `lagged` (the client fell behind) resumes at once.
    """
    since, failures, connected = 0, 0, False
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        result: LogEvent | None = None
        code: int | None = None
        reason = ""
        try:
            async with connect(
                ws_url(api, deployment_id, since),
                additional_headers=headers,
                open_timeout=WS_OPEN_TIMEOUT_S,
                max_size=WS_MAX_FRAME,
            ) as socket:
                connected = True
                with contextlib.suppress(ConnectionClosed):
                    async for message in socket:
                        for event in _events(message):
                            failures = 0
                            seq = event.get("seq")
                            since = seq if isinstance(seq, int) else since
                            result = event if event.get("type") == "result" else result
                            printer.show(event)
                code, reason = socket.close_code, socket.close_reason or ""
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ClientError(
                f"{api} refused the log stream (HTTP {status}); is it a Scale Mesh API?"
            ) from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            if not connected:
                raise ClientError(
                    f"cannot reach the log stream of {api} ({exc or type(exc).__name__})"
                ) from None
            reason = str(exc)
        if result is not None:
            return result
        _refused(code, reason, deployment_id)
        if code == WS_LAGGED:
            continue
        if failures == len(RECONNECT_DELAYS_S):
            raise ClientError(
                f"lost the log stream ({reason or code}); "
                f"pick it up again with scalemesh logs {deployment_id} -f"
            )
        await asyncio.sleep(RECONNECT_DELAYS_S[failures])
        failures += 1


def _events(message: str | bytes) -> list[LogEvent]:
    try:
        events = json.loads(message)
    except ValueError:
        events = None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ClientError("the log stream sent something other than a list of events")
    return events


def _refused(code: int | None, reason: str, deployment_id: str) -> None:
    """Raise for a close that reconnecting cannot fix; return for a drop or `lagged`."""
    if code == WS_NOT_SIGNED_IN:
        raise ClientError(EXPIRED)
    if code in (WS_FORBIDDEN, WS_NOT_FOUND):
        raise ClientError(f"you have no deployment {deployment_id!r}")
    if code == WS_NORMAL:
        raise ClientError(
            f"the log stream ended without a result; see scalemesh logs {deployment_id}"
        )
    if code is not None and 4000 <= code < 5000 and code != WS_LAGGED:
        raise ClientError(f"the log stream was refused: {reason or code}")


def follow_to_the_end(api: Api, deployment_id: str) -> int:
    """Stream the log to stdout; 0 when the deployment is ready, else ClientError."""
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
    if state != "ready":
        raise ClientError(f"deployment {state}: {result.get('error') or 'no reason given'}")
    deployment = api.json("GET", deployment_path(deployment_id))
    print(f"Ready: {deployment['url']}")
    # `aliases` lists the deployment's own URL too.
    for alias in [url for url in deployment["aliases"] if url != deployment["url"]]:
        print(f"  also {alias}")
    return 0


async def _tick(printer: LogPrinter) -> None:
    while True:
        await asyncio.sleep(TICK_S)
        printer.tick()


# --- choosing the project from the current directory ------------------------------------------


def repo_key(url: str, cwd: Path) -> str:
    """A git URL in a form two spellings of one repository share (`host/owner/name`, a path)."""
    value = url.strip()
    if value.startswith("file://"):
        return os.path.realpath(urlsplit(value).path)
    if "://" in value:
        parts = urlsplit(value)
        return f"{parts.hostname}{parts.path}".removesuffix("/").removesuffix(".git").lower()
    head, colon, tail = value.partition(":")
    if colon and "/" not in head:  # scp-like: git@github.com:owner/name.git
        host = head.rpartition("@")[2]
        return f"{host}/{tail.strip('/')}".removesuffix(".git").lower()
    return os.path.realpath(cwd / value)


def local_repos(cwd: Path) -> set[str]:
    """The repository in `cwd`, as keys: its remotes' URLs and its own path."""
    remotes = _git(cwd, "config", "--get-regexp", r"^remote\..*\.url$")
    urls = [line.partition(" ")[2] for line in remotes]
    urls += _git(cwd, "rev-parse", "--show-toplevel")
    return {repo_key(url, cwd) for url in urls}


def _git(cwd: Path, *args: str) -> list[str]:
    """The lines git prints, or none when it fails (no repository here, no git at all)."""
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv
            ["git", *args],  # noqa: S607 - the user's git, as their shell would find it
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return done.stdout.splitlines() if done.returncode == 0 else []


def choose_project(projects: Sequence[Mapping[str, Any]], here: set[str], cwd: Path) -> str:
    matches = [p["slug"] for p in projects if repo_key(p["git_url"], cwd) in here]
    if len(matches) == 1:
        return str(matches[0])
    if matches:
        raise ClientError(
            f"projects {', '.join(matches)} all build this repository; "
            "name one: scalemesh deploy PROJECT"
        )
    if len(projects) == 1:
        return str(projects[0]["slug"])
    if not projects:
        raise ClientError(
            "you have no projects; create one with scalemesh project create NAME --repo REPO"
        )
    names = ", ".join(str(p["slug"]) for p in projects)
    raise ClientError(
        f"none of your projects ({names}) builds the repository here; "
        "name one: scalemesh deploy PROJECT"
    )


# --- commands ---------------------------------------------------------------------------------


def _login(args: argparse.Namespace) -> int:
    api = check_api_url(args.api)
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
    token = answer.get("token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise ClientError(f"{api} answered the login without a token; is it a Scale Mesh API?")
    path = config_path(os.environ)
    save_config(path, Config(api, token))
    print(f"Logged in to {api} as {email}; the session is saved in {path}.")
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
        projects = api.json("GET", "/projects")
    if not projects:
        print("No projects yet: scalemesh project create NAME --repo REPO", file=sys.stderr)
        return 0
    rows = [("SLUG", "PRODUCTION URL", "REPO")]
    rows += [(p["slug"], p["production_url"], p["repo"]) for p in projects]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for slug, url, repo in rows:
        print(f"{slug:<{widths[0]}}  {url:<{widths[1]}}  {repo}")
    return 0


def _project_create(args: argparse.Namespace) -> int:
    body = {"name": args.name, "repo": args.repo, "production_branch": args.branch}
    for field in ("root_directory", "install_command", "build_command", "output_directory"):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    with session() as api:
        project = api.json("POST", "/project", body=body)
    print(f"Created {project['slug']}: production at {project['production_url']}")
    print(f"Deploy it with: scalemesh deploy {project['slug']}", file=sys.stderr)
    return 0


def _deploy(args: argparse.Namespace) -> int:
    with session() as api:
        slug = args.project
        if slug is None:
            cwd = Path.cwd()
            slug = choose_project(api.json("GET", "/projects"), local_repos(cwd), cwd)
        body = {"project": slug} if args.ref is None else {"project": slug, "ref": args.ref}
        deployment = api.json("POST", "/deploy", body=body)
        where = deployment["branch"] or deployment["ref"]
        print(f"Deploying {slug} ({where} @ {deployment['sha'][:7]}): {deployment['id']}")
        print(f"URL  {deployment['url']}")
        print(f"Log  {deployment['log_url']}", flush=True)
        return follow_to_the_end(api, deployment["id"]) if args.follow else 0


def _logs(args: argparse.Namespace) -> int:
    with session() as api:
        if args.follow:
            return follow_to_the_end(api, args.deployment)
        text = api.call("GET", f"{deployment_path(args.deployment)}/logs").text
    sys.stdout.write(text)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    with session() as api:
        project = api.json("GET", project_path(args.project))
        slug = project["slug"]
        if args.deployment is not None:
            target = api.json("GET", deployment_path(args.deployment))
            if target["project"] != slug:
                raise ClientError(
                    f"deployment {target['id']} belongs to {target['project']}, not {slug}"
                )
        else:
            target = _previous(api, slug, project["production_url"])
        promoted = api.json("POST", f"{deployment_path(target['id'])}/promote")
    where = promoted["branch"] or promoted["ref"]
    print(
        f"Production of {slug} now serves {promoted['id']} ({where} @ {promoted['sha'][:7]}): "
        f"{project['production_url']}"
    )
    return 0


def _previous(api: Api, slug: str, production_url: str) -> dict[str, Any]:
    """The newest ready deployment older than the one production serves now."""
    current: dict[str, Any] | None = None
    for deployment in api.pages(f"{project_path(slug)}/deployments"):
        if current is None:
            current = deployment if production_url in deployment["aliases"] else None
        elif deployment["state"] == "ready":
            return deployment
    if current is None:
        raise ClientError(f"production of {slug} serves no deployment yet; deploy it first")
    raise ClientError(
        f"no ready deployment of {slug} is older than the one in production ({current['id']})"
    )


def _env_set(args: argparse.Namespace) -> int:
    changes: dict[str, str | None] = {}
    for pair in args.pairs:
        name, equals, value = pair.partition("=")
        if not equals:
            raise ClientError(f"{pair!r} is not NAME=VALUE")
        changes[name] = value
    return _change_env(args.project, changes, "Set")


def _env_unset(args: argparse.Namespace) -> int:
    return _change_env(args.project, dict.fromkeys(args.names), "Unset")


def _change_env(slug: str, changes: dict[str, str | None], done: str) -> int:
    with session() as api:
        project = api.json("PATCH", project_path(slug), body={"env": changes})
    print(f"{done} {', '.join(changes)} on {project['slug']}; the next deployment uses the change.")
    return 0


def _env_list(args: argparse.Namespace) -> int:
    with session() as api:
        project = api.json("GET", project_path(args.project))
    for name in project["env"]:
        print(name)
    if not project["env"]:
        print(f"{project['slug']} has no env vars", file=sys.stderr)
    return 0


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
    login.set_defaults(handler=_login)

    command(commands, "projects", "List your projects.").set_defaults(handler=_projects)

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
    create.set_defaults(handler=_project_create)

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

    env = command(commands, "env", "Manage a project's build env vars.")
    env_actions = env.add_subparsers(dest="env_command", required=True, metavar="ACTION")
    env_set = command(env_actions, "set", "Set env vars (values are write-only).")
    env_set.add_argument("project", help="the project's slug")
    env_set.add_argument("pairs", nargs="+", metavar="NAME=VALUE")
    env_set.set_defaults(handler=_env_set)
    env_unset = command(env_actions, "unset", "Delete env vars.")
    env_unset.add_argument("project", help="the project's slug")
    env_unset.add_argument("names", nargs="+", metavar="NAME")
    env_unset.set_defaults(handler=_env_unset)
    env_list = command(env_actions, "list", "List the names of a project's env vars.")
    env_list.add_argument("project", help="the project's slug")
    env_list.set_defaults(handler=_env_list)
