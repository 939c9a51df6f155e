"""A live API for the client command tests, and the ways they run `scalemesh` against it.

One API serves each test module that uses `live` (each test signs up its own account).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shlex
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.asgi import create_app
from app.cli import main
from app.client.config import Config, save_config
from app.settings import Settings
from tests.support.admins import make_admin_in_file
from tests.support.api import PASSWORD, TEST_PREVIEW_KEY, TEST_SECRET_KEY, bearer
from tests.support.git import git

ROOT = Path(__file__).resolve().parents[2]
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
        # The CLI tests build file:// repositories, which only the server's admin may.
        assert self.settings.database.path is not None
        make_admin_in_file(self.settings.database.path, email)
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
    with serve_live(tmp_path_factory.mktemp("api"), sqlite_template) as served:
        yield served


@contextlib.contextmanager
def serve_live(data: Path, sqlite_template: Path, **environ: str) -> Iterator[Live]:
    """The API on a loopback port, its data in `data`; `environ` adds to its settings."""
    shutil.copyfile(sqlite_template, data / "db.sqlite3")
    settings = Settings.from_env(
        {
            "SCALEMESH_DATA_DIR": str(data / "data"),
            "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY,
            "SCALEMESH_PREVIEW_KEY": TEST_PREVIEW_KEY,
            "SCALEMESH_DATABASE_URL": f"sqlite:///{data / 'db.sqlite3'}",
            "SCALEMESH_STORAGE_URL": f"file://{data / 'storage'}",
            "SCALEMESH_RECONCILE_INTERVAL": "0.2",
            "SCALEMESH_BUILD_TIMEOUT": "60",
            "SCALEMESH_SIGNUP": "open",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            **environ,
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
    save_config(path, Config(api, token))


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
