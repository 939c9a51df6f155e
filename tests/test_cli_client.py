"""The `scalemesh` client commands against a live API: uvicorn on loopback, real local builds.

One API serves the whole module (each test signs up its own account); the log-stream edge
cases that a real server cannot be made to show on demand (a dropped connection, `lagged`, a
garbled frame) run against a small fake websocket server that speaks the same protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import pty
import select
import shlex
import shutil
import socket
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.server import ServerConnection, serve

from app import client
from app.asgi import create_app
from app.cli import main
from app.settings import Settings
from tests.conftest import PASSWORD, TEST_SECRET_KEY, bearer
from tests.test_pipeline import git

ROOT = Path(__file__).resolve().parent.parent
SCALEMESH = ROOT / ".venv" / "bin" / "scalemesh"
WAIT_S = 20.0
COMMAND_TIMEOUT_S = 120.0

# A site without package.json: the build command runs as is, no npm involved.
BUILD = ["sh", "-c", "mkdir -p dist && echo '<h1>hi</h1>' > dist/index.html && echo built the site"]
FAILING_BUILD = ["sh", "-c", "echo about to fail; sleep 1.5; exit 3"]


# --- a live API -------------------------------------------------------------------------------


@dataclass
class Live:
    url: str
    settings: Settings

    def http(self) -> httpx.Client:
        # trust_env=False: a proxy set in the environment must not capture loopback requests.
        return httpx.Client(base_url=self.url, timeout=WAIT_S, trust_env=False)

    def account(self) -> Account:
        email = f"{uuid.uuid4().hex[:12]}@example.com"
        with self.http() as http:
            body = {"email": email, "password": PASSWORD}
            assert http.post("/user/signup", json=body).status_code == 201
            token = http.post("/user/login", json=body).json()["token"]
        return Account(self, email, token)


@dataclass
class Account:
    live: Live
    email: str
    token: str

    def get(self, path: str) -> Any:
        with self.live.http() as http:
            response = http.get(path, headers=bearer(self.token))
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: Any = None) -> httpx.Response:
        with self.live.http() as http:
            return http.post(path, json=body, headers=bearer(self.token))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Live]:
    data = tmp_path_factory.mktemp("api")
    shutil.copyfile(sqlite_template, data / "db.sqlite3")
    settings = Settings.from_env(
        {
            "SCALEMESH_DATA_DIR": str(data / "data"),
            "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY,
            "SCALEMESH_DATABASE_URL": f"sqlite:///{data / 'db.sqlite3'}",
            "SCALEMESH_STORAGE_URL": f"file://{data / 'storage'}",
            "SCALEMESH_RECONCILE_INTERVAL": "0.2",
            "SCALEMESH_BUILD_TIMEOUT": "60",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
        }
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_config=None, lifespan="on"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(sockets=[listener]),), daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            assert time.monotonic() < deadline, "uvicorn did not start in time"
            time.sleep(0.01)
        yield Live(f"http://127.0.0.1:{listener.getsockname()[1]}", settings)
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        loop.close()
        listener.close()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where this test's CLI keeps its session: a directory that does not exist yet."""
    path = tmp_path / "home" / "scalemesh" / "config.json"
    monkeypatch.setenv("SCALEMESH_CONFIG", str(path))
    return path


@pytest.fixture
def account(live: Live, config: Path) -> Account:
    """A fresh account, logged in through the CLI."""
    account = live.account()
    save(config, live.url, account.token)
    return account


def save(path: Path, api: str, token: str) -> None:
    client.save_config(path, client.Config(api, token))


def cli(capsys: pytest.CaptureFixture[str], *args: str, stdin: str = "") -> tuple[int, str, str]:
    """Run `scalemesh ARGS` in this process; its exit code, stdout and stderr."""
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "README.md").write_text("a tiny site, built by its build command\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-qm", "site")
    return path


def create(
    capsys: pytest.CaptureFixture[str], name: str, repo: Path, build: list[str] = BUILD
) -> str:
    code, out, err = cli(
        capsys,
        *("project", "create", name, "--repo", f"file://{repo}"),
        *("--build-command", shlex.join(build)),
        *("--output-dir", "dist"),
    )
    assert code == 0, err
    return out.split()[1].rstrip(":")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def subprocess_env(home: Path, **extra: str) -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SCALEMESH_")}
    return {**environ, "HOME": str(home), **extra}


def scalemesh(*args: str, home: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the installed `scalemesh` as a user would, with `home` as the home directory."""
    return subprocess.run(
        [str(SCALEMESH), *args],
        input=stdin,
        env=subprocess_env(home),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
        # No controlling terminal: getpass reads the password from stdin, as in a script.
        start_new_session=True,
    )


# --- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["login"],
        ["projects"],
        ["project"],
        ["project", "create"],
        ["deploy"],
        ["logs"],
        ["rollback"],
        ["env"],
        ["env", "set"],
        ["env", "unset"],
        ["env", "list"],
    ],
    ids=" ".join,
)
def test_every_client_command_has_help(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])

    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: scalemesh {' '.join(command)} ")
    assert out.split("\n\n")[1].strip()


# --- login and the config file ------------------------------------------------------------------


def test_login_saves_the_session_for_its_owner_only(
    live: Live, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = live.account()

    code, out, _ = cli(
        capsys,
        *("login", "--api", live.url + "/", "--email", account.email, "--password-stdin"),
        stdin=PASSWORD + "\n",
    )

    assert code == 0
    assert f"Logged in to {live.url} as {account.email}" in out
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    saved = json.loads(config.read_text())
    assert set(saved) == {"api", "token"}
    assert saved["api"] == live.url
    assert os.listdir(config.parent) == ["config.json"]  # no temporary file left behind
    with live.http() as http:
        assert http.get("/projects", headers=bearer(saved["token"])).status_code == 200

    # Again, with the email typed at the prompt: a new session replaces the file.
    code, _, err = cli(
        capsys,
        "login",
        "--api",
        live.url,
        "--password-stdin",
        stdin=f"{account.email}\n{PASSWORD}\n",
    )

    assert code == 0
    assert "Email: " in err
    again = json.loads(config.read_text())
    assert again["token"] != saved["token"]
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_login_prompts_and_saves_under_the_home_directory(live: Live, tmp_path: Path) -> None:
    account = live.account()
    home = tmp_path / "home"
    home.mkdir()

    done = scalemesh("login", "--api", live.url, stdin=f"{account.email}\n{PASSWORD}\n", home=home)

    assert done.returncode == 0, done.stderr
    saved = home / ".config" / "scalemesh" / "config.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text())["api"] == live.url


def test_login_without_a_password_says_so(live: Live, tmp_path: Path) -> None:
    done = scalemesh("login", "--api", live.url, "--email", "ada@example.com", home=tmp_path)

    assert done.returncode == 1
    assert done.stderr.endswith("Password: \nscalemesh: no password given\n")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["--email", "nobody@example.com", "--password-stdin"],
            PASSWORD,
            "Wrong email or password",
        ),
        (["--email", "ada@example.com", "--password-stdin"], "", "no password on standard input"),
        (["--password-stdin"], "", "Email: \nscalemesh: no email given"),
    ],
)
def test_login_refusals_are_one_line(
    live: Live,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    stdin: str,
    message: str,
) -> None:
    code, _, err = cli(capsys, "login", "--api", live.url, *args, stdin=stdin)

    assert code == 1
    assert err.splitlines()[-1].startswith("scalemesh: ")
    assert message in err
    assert not config.exists()


@pytest.mark.parametrize("api", ["localhost:8000", "ftp://example.com", "http://", "http://[::1"])
def test_login_refuses_what_is_not_an_api_url(
    api: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "login", "--api", api, "--email", "a@example.com")

    assert code == 1
    assert err == f"scalemesh: {api!r} is not an API URL; give one like http://localhost:8000\n"


def test_login_to_an_unreachable_api_says_so(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    code, _, err = cli(
        capsys, "login", "--api", url, "--email", "a@example.com", "--password-stdin", stdin="x\n"
    )

    assert code == 1
    assert err.startswith(f"scalemesh: cannot reach the Scale Mesh API at {url} (")
    assert "Traceback" not in err
    assert not config.exists()


class NotScaleMesh(BaseHTTPRequestHandler):
    """Some other web server: HTML, odd JSON, no websocket."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/projects"):
            self._answer(200, "text/html", b"<h1>Welcome</h1>")
        else:
            self._answer(502, "text/html", b"<h1>Bad gateway</h1>")

    def do_POST(self) -> None:
        if self.path.startswith("/json/"):
            self._answer(200, "application/json", b'{"welcome": true}')
        elif self.path.startswith("/html/"):
            self._answer(200, "text/html", b"<h1>Welcome</h1>")
        else:
            self._answer(404, "text/html", b"<h1>Not here</h1>")

    def _answer(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass  # keep the test output clean


@pytest.fixture
def other_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotScaleMesh)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "there is no Scale Mesh API at {url} (POST /user/login answered 404); check --api"),
        ("/json", "{url} answered the login without a token; is it a Scale Mesh API?"),
        ("/html", "POST /user/login did not answer with JSON; is {url} a Scale Mesh API?"),
    ],
)
def test_login_to_something_else_says_it_is_no_api(
    other_server: str, config: Path, capsys: pytest.CaptureFixture[str], path: str, message: str
) -> None:
    url = other_server + path

    code, _, err = cli(
        capsys, "login", "--api", url, "--email", "a@example.com", "--password-stdin", stdin="x\n"
    )

    assert code == 1
    assert err == f"scalemesh: {message.format(url=url)}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["projects"], "GET /projects did not answer with JSON; is {url} a Scale Mesh API?"),
        (["logs", "abc"], "GET /deployments/abc/logs answered 502 Bad Gateway; is {url} a Scale "),
        (["logs", "abc", "-f"], "{url} refused the log stream (HTTP 502); is it a Scale Mesh API?"),
    ],
)
def test_a_saved_api_that_is_something_else_says_so(
    other_server: str,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    save(config, other_server, "token")

    code, _, err = cli(capsys, *args)

    assert code == 1
    assert err.startswith(f"scalemesh: {message.format(url=other_server)}")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "not logged in; run scalemesh login"),
        ("{", "{path} is not valid JSON; run scalemesh login"),
        ('["api", "token"]', "{path} holds no API and token; run scalemesh login"),
        ('{"api": "http://x", "token": ""}', "{path} holds no API and token; run scalemesh login"),
        (
            '{"api": "x", "token": "t"}',
            "'x' is not an API URL; give one like http://localhost:8000",
        ),
    ],
)
def test_commands_need_a_saved_session(
    config: Path, capsys: pytest.CaptureFixture[str], content: str | None, problem: str
) -> None:
    if content is not None:
        config.parent.mkdir(parents=True)
        config.write_text(content)

    code, out, err = cli(capsys, "projects")

    assert code == 1
    assert out == ""
    assert err == f"scalemesh: {problem.format(path=config)}\n"


def test_an_expired_session_asks_to_log_in_again(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    assert account.post("/user/logout").status_code == 204

    for args in (["projects"], ["logs", str(uuid.uuid4()), "-f"]):
        code, _, err = cli(capsys, *args)

        assert code == 1
        assert err == "scalemesh: your session expired; run scalemesh login\n"


def test_an_unwritable_config_fails_cleanly_and_leaves_nothing_behind(
    live: Live, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = live.account()
    config.mkdir(parents=True)  # a directory where the file should go

    code, _, err = cli(
        capsys,
        *("login", "--api", live.url, "--email", account.email, "--password-stdin"),
        stdin=PASSWORD,
    )

    assert code == 1
    assert err == f"scalemesh: cannot save the session in {config} (Is a directory)\n"
    assert os.listdir(config.parent) == ["config.json"]
    assert os.listdir(config) == []


# --- projects and env vars --------------------------------------------------------------------


def test_projects_are_created_listed_and_their_env_managed(
    account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "projects")
    assert (code, out) == (0, "")
    assert "No projects yet" in err

    repo = make_repo(tmp_path / "site")
    code, out, _ = cli(
        capsys,
        *("project", "create", "My Site", "--repo", f"file://{repo}", "--branch", "main"),
        *("--root-dir", "web", "--install-command", "true", "--build-command", "make site"),
        *("--output-dir", "public"),
    )
    assert code == 0
    assert out == "Created my-site: production at http://my-site.localhost:8080\n"
    project = account.get("/projects/my-site")
    assert project["repo"] == f"file://{repo}"
    assert (project["root_directory"], project["output_directory"]) == ("web", "public")
    assert (project["install_command"], project["build_command"]) == ("true", "make site")
    cli(capsys, "project", "create", "Blog", "--repo", "octocat/hello-world")

    code, out, _ = cli(capsys, "projects")
    assert code == 0
    assert out.splitlines() == [
        "SLUG     PRODUCTION URL                 REPO",
        "blog     http://blog.localhost:8080     octocat/hello-world",
        f"my-site  http://my-site.localhost:8080  file://{repo}",
    ]

    code, out, _ = cli(capsys, "env", "set", "my-site", "API_KEY=s3cr3t=x", "MODE=", "OLD=1")
    assert (code, out) == (
        0,
        "Set API_KEY, MODE, OLD on my-site; the next deployment uses the change.\n",
    )
    code, out, _ = cli(capsys, "env", "unset", "my-site", "OLD")
    assert (code, out) == (0, "Unset OLD on my-site; the next deployment uses the change.\n")
    code, out, _ = cli(capsys, "env", "list", "my-site")
    assert (code, out) == (0, "API_KEY\nMODE\n")
    assert account.get("/projects/my-site")["env"] == ["API_KEY", "MODE"]

    code, out, err = cli(capsys, "env", "list", "blog")
    assert (code, out, err) == (0, "", "blog has no env vars\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["env", "list", "nope"], "You have no project 'nope'."),
        (["env", "set", "nope", "A=1"], "You have no project 'nope'."),
        (["rollback", "nope"], "You have no project 'nope'."),
        (["deploy", "nope"], "You have no project 'nope'."),
        (["env", "set", "nope", "A"], "'A' is not NAME=VALUE"),
        (["logs", "nope"], "There is no deployment 'nope'."),
        (["logs", "nope", "-f"], "you have no deployment 'nope'"),
        (["project", "create", "x", "--repo", "http://example.com/r"], "plain http:// git URLs"),
    ],
)
def test_mistakes_get_one_line_from_the_api(
    account: Account, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = cli(capsys, *args)

    assert code == 1
    assert out == ""
    assert err.startswith("scalemesh: ")
    assert message in err
    assert len(err.splitlines()) == 1


# --- deploy, logs, rollback: real builds ----------------------------------------------------------


def test_deploy_follow_logs_and_rollback(
    account: Account,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = make_repo(tmp_path / "site")
    slug = create(capsys, "site", repo)
    other = create(capsys, "other", make_repo(tmp_path / "other"))

    # From inside the repository, with no project named: the one that builds it.
    monkeypatch.chdir(repo)
    code, out, err = cli(capsys, "deploy", "--follow")

    assert code == 0, err
    lines = out.splitlines()
    first = lines[0].split()[-1]
    assert lines[0].startswith(f"Deploying {slug} (main @ ")
    url = lines[1].removeprefix("URL  ")
    assert url.startswith(f"http://{slug}-")
    assert lines[2] == f"Log  http://localhost:8000/deployments/{first}"
    assert "── build ──" in lines
    assert any(line.endswith("] built the site") and line.startswith("[") for line in lines)
    assert lines[-4:] == [
        f"── deployment ready: {url} ──",
        f"Ready: {url}",
        f"  also http://{slug}.localhost:8080",
        f"  also http://{slug}-git-main.localhost:8080",
    ]

    # One that never finished (it cannot be rolled back to), then a second one, queued, then
    # followed with `logs -f`.
    code, out, _ = cli(capsys, "deploy", slug)
    assert code == 0
    cancelled = out.splitlines()[0].split()[-1]
    assert account.post(f"/deployments/{cancelled}/cancel").status_code == 200
    code, out, _ = cli(capsys, "deploy", slug, "--ref", "main")
    assert code == 0
    second = out.splitlines()[0].split()[-1]
    code, out, _ = cli(capsys, "logs", second, "-f")
    assert code == 0
    assert "] built the site" in out
    assert out.splitlines()[-3].startswith("Ready: http://site-")
    code, out, _ = cli(capsys, "logs", second)
    assert code == 0
    assert "── build: ok in " in out
    assert out.splitlines()[-1].startswith("── deployment ready: http://site-")

    def production() -> str:
        deployments = account.get(f"/projects/{slug}/deployments")
        serving = [d["id"] for d in deployments if f"http://{slug}.localhost:8080" in d["aliases"]]
        assert len(serving) == 1
        return str(serving[0])

    assert production() == second

    # Back to the one before, one page of history at a time.
    monkeypatch.setattr(client, "PAGE", 1)
    code, out, _ = cli(capsys, "rollback", slug)
    assert code == 0
    assert out.startswith(f"Production of {slug} now serves {first} (main @ ")
    assert out.endswith(f"): http://{slug}.localhost:8080\n")
    assert production() == first

    code, _, err = cli(capsys, "rollback", slug)
    assert code == 1
    assert err == (
        f"scalemesh: no ready deployment of {slug} is older than the one in production ({first})\n"
    )

    code, _, _ = cli(capsys, "rollback", slug, second)
    assert code == 0
    assert production() == second

    code, _, err = cli(capsys, "rollback", other, second)
    assert code == 1
    assert err == f"scalemesh: deployment {second} belongs to {slug}, not {other}\n"
    code, _, err = cli(capsys, "rollback", other)
    assert code == 1
    assert err == f"scalemesh: production of {other} serves no deployment yet; deploy it first\n"


def test_a_failing_build_followed_on_a_terminal_exits_non_zero(
    account: Account, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slug = create(capsys, "broken", make_repo(tmp_path / "broken"), FAILING_BUILD)
    leader, follower = pty.openpty()
    errors = tmp_path / "stderr"
    try:
        with errors.open("wb") as stderr_file:
            process = subprocess.Popen(
                [str(SCALEMESH), "deploy", "--follow"],
                stdin=subprocess.DEVNULL,
                stdout=follower,
                stderr=stderr_file,
                cwd=tmp_path,  # not a git repository: the only project is chosen
                env=subprocess_env(tmp_path, SCALEMESH_CONFIG=str(config)),
            )
        os.close(follower)
        shown = read_terminal(leader, process)
    finally:
        os.close(leader)
    stderr = errors.read_text()

    assert process.returncode == 1
    assert stderr.startswith("scalemesh: deployment failed: ")
    assert "exited with code 3" in stderr
    assert f"Deploying {slug} (main @ " in shown
    assert "] about to fail" in shown
    assert "\r\x1b[K" in shown  # the live step line is redrawn in place
    assert "[4/5] build  0:" in shown
    assert "── build: failed in " in shown
    assert shown.endswith("\r\x1b[K")  # and cleared at the end


def read_terminal(leader: int, process: subprocess.Popen[bytes]) -> str:
    chunks: list[bytes] = []
    deadline = time.monotonic() + COMMAND_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the command closed its terminal
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=WAIT_S)
    return b"".join(chunks).decode().replace("\r\n", "\n")


# --- choosing the project -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://github.com/Octo/Web.git", "github.com/octo/web"),
        ("https://github.com/octo/web/", "github.com/octo/web"),
        ("ssh://git@github.com:22/octo/web.git", "github.com/octo/web"),
        ("git@github.com:Octo/web.git", "github.com/octo/web"),
        ("file:///srv/../srv/site", "/srv/site"),
        ("../site", "/work/site"),
        ("/srv/a:b", "/srv/a:b"),
    ],
)
def test_spellings_of_one_repository_share_a_key(url: str, key: str) -> None:
    assert client.repo_key(url, Path("/work/here")) == key


def test_the_project_comes_from_the_git_remote(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "clone")
    git(repo, "remote", "add", "origin", "git@github.com:Octo/Web.git")
    projects = [
        {"slug": "web", "git_url": "https://github.com/octo/web.git"},
        {"slug": "docs", "git_url": "https://github.com/octo/docs.git"},
    ]

    here = client.local_repos(repo / "")

    assert here == {"github.com/octo/web", os.path.realpath(repo)}
    assert client.choose_project(projects, here, repo) == "web"
    assert client.choose_project(projects[1:], here, repo) == "docs"  # the only one
    with pytest.raises(client.ClientError, match="projects web, web2 all build this repository"):
        client.choose_project([*projects, {**projects[0], "slug": "web2"}], here, repo)
    with pytest.raises(client.ClientError, match=r"none of your projects \(docs, blog\) builds"):
        client.choose_project([projects[1], {**projects[1], "slug": "blog"}], here, repo)
    with pytest.raises(client.ClientError, match="you have no projects; create one"):
        client.choose_project([], here, repo)


def test_without_git_nothing_matches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.local_repos(tmp_path) == set()  # not a repository
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert client.local_repos(tmp_path) == set()


# --- the log stream's edge cases, against a fake server -------------------------------------------


def line(seq: int, text: str) -> dict[str, Any]:
    return {
        "seq": seq,
        "type": "line",
        "ts": 1_700_000_000.0 + seq,
        "stream": "stdout",
        "text": text,
    }


FAILED = {"seq": 9, "type": "result", "state": "failed", "error": "build failed", "url": None}


@dataclass
class Scene:
    """What the fake server does on one connection: send these frames, then close or drop."""

    frames: list[str]
    close: int | None = 1000
    """None drops the connection without a close frame."""
    reason: str = ""
    then_stop: bool = False
    """Stop listening after this connection: the retries find nobody."""


@dataclass
class FakeStream:
    url: str
    scenes: list[Scene]
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Authorization) of each connection."""


@contextlib.contextmanager
def fake_stream(*scenes: Scene) -> Iterator[FakeStream]:
    queue = list(scenes)
    loop = asyncio.new_event_loop()
    fake = FakeStream("", queue)
    servers: list[Any] = []

    async def handle(connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        fake.seen.append((request.path, request.headers.get("Authorization")))
        scene = queue.pop(0)
        for frame in scene.frames:
            await connection.send(frame)
        if scene.close is None:
            assert connection.transport is not None
            connection.transport.abort()
            if scene.then_stop:
                servers[0].close(close_connections=False)
            return
        await connection.close(scene.close, scene.reason)

    async def start() -> Any:
        return await serve(handle, "127.0.0.1", 0)

    server = loop.run_until_complete(start())
    servers.append(server)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        port = next(iter(server.sockets)).getsockname()[1]
        fake.url = f"http://127.0.0.1:{port}"
        yield fake
    finally:

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(WAIT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT_S)
        loop.close()


def frames(*events: dict[str, Any]) -> str:
    return json.dumps(list(events))


@pytest.fixture
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "RECONNECT_DELAYS_S", (0.0, 0.0))


def test_a_dropped_or_lagged_stream_resumes_where_it_stopped(
    config: Path, capsys: pytest.CaptureFixture[str], no_waiting: None
) -> None:
    with fake_stream(
        Scene([frames(line(1, "one"), line(2, "two"))], close=None),
        Scene(
            [
                frames(line(3, "three"), {"type": "heartbeat", "ts": 1.0}),
                frames({"type": "lagged", "seq": 3}),
            ],
            close=4408,
        ),
        Scene([], close=1011, reason="The log is unavailable"),
        Scene([frames(line(4, "four"), {"seq": 5, "type": "newer-kind"}, FAILED)]),
    ) as fake:
        save(config, fake.url, "tok")
        code, out, err = cli(capsys, "logs", "dep-1", "-f")

    assert code == 1
    assert err == "scalemesh: deployment failed: build failed\n"
    texts = [row.split("] ", 1)[1] for row in out.splitlines() if row.startswith("[")]
    assert texts == ["one", "two", "three", "four"]
    assert out.splitlines()[-1] == "── deployment failed: build failed ──"
    assert [path for path, _ in fake.seen] == [
        "/deployments/dep-1/logs/ws?since=0",
        "/deployments/dep-1/logs/ws?since=2",
        "/deployments/dep-1/logs/ws?since=3",
        "/deployments/dep-1/logs/ws?since=3",
    ]
    assert {auth for _, auth in fake.seen} == {"Bearer tok"}


@pytest.mark.parametrize(
    ("scenes", "message"),
    [
        ([Scene([], close=1011)] * 3, "lost the log stream (1011); pick it up again with "),
        ([Scene([frames(line(1, "x"))])], "the log stream ended without a result; see scalemesh "),
        ([Scene([], close=4400, reason="since must be")], "the log stream was refused: since must"),
        ([Scene([], close=4403)], "you have no deployment 'dep-1'"),
        ([Scene(["not json"])], "the log stream sent something other than a list of events"),
        ([Scene(['{"seq": 1}'])], "the log stream sent something other than a list of events"),
        (
            [Scene([frames({"seq": 1, "type": "result", "state": "cancelled", "error": None})])],
            "deployment cancelled: no reason given",
        ),
    ],
)
def test_a_stream_that_cannot_go_on_says_why(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    no_waiting: None,
    scenes: list[Scene],
    message: str,
) -> None:
    with fake_stream(*scenes) as fake:
        save(config, fake.url, "tok")
        code, _, err = cli(capsys, "logs", "dep-1", "-f")

    assert code == 1
    assert err.startswith(f"scalemesh: {message}")
    assert len(err.splitlines()) == 1


def test_a_stream_that_is_gone_for_good_is_not_retried(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    save(config, url, "tok")

    code, _, err = cli(capsys, "logs", "dep-1", "-f")

    assert code == 1
    assert err.startswith(f"scalemesh: cannot reach the log stream of {url} (")


def test_a_stream_that_drops_then_stays_away_gives_up(
    config: Path, capsys: pytest.CaptureFixture[str], no_waiting: None
) -> None:
    with fake_stream(Scene([frames(line(1, "one"))], close=None, then_stop=True)) as fake:
        save(config, fake.url, "tok")
        code, out, err = cli(capsys, "logs", "dep-1", "-f")

    assert code == 1
    assert "] one" in out
    assert err.startswith("scalemesh: lost the log stream (")
    assert len(fake.seen) == 1  # then nobody answered the retries


def test_the_live_line_says_what_the_build_is_doing() -> None:
    out = io.StringIO()
    printer = client.LogPrinter(out, live=True)

    printer.show(line(1, "queued"))
    printer.show({"seq": 2, "type": "step", "step": "install", "status": "start"})
    printer.tick()
    printer.show({"type": "heartbeat", "ts": 1.0})
    printer.show({"seq": 3, "type": "end", "ok": True})
    printer.show(line(4, "done"))
    printer.close()

    assert out.getvalue() == (
        "\r\x1b[K[22:13:21] queued\n| waiting for the build to start  0:00"
        "\r\x1b[K── install ──\n| [3/5] install  0:00"
        "\r\x1b[K/ [3/5] install  0:00"
        "\r\x1b[K[22:13:24] done\n/ publishing  0:00"
        "\r\x1b[K"
    )


def test_https_apis_stream_over_wss() -> None:
    assert client.ws_url("https://sm.example.com", "d", 7) == (
        "wss://sm.example.com/deployments/d/logs/ws?since=7"
    )
