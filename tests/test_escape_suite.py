"""The escape suite: a hostile repository built by a real `scalemesh serve api` with the local
runner, on its default sandbox. Every way out it tries fails, and its deployment still goes live.

The API runs as its own process with canary secrets in its environment (a GitHub App key,
AWS credentials, a webhook secret), Redis as its log bus, and a listener on the host's own
address beside it. The build (`tests/fixtures/escape/escape.py`) is told where everything is,
as an attacker would guess it, and writes down what each attempt did.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from builder.toolchains.setup import TOOLCHAIN_ENV
from tests.support.api import PASSWORD, bearer
from tests.support.git import git
from tests.support.github_shapes import app_private_key
from tests.support.ports import reserved_port
from tests.support.processes import cli_env, http_client, run_cli, running
from tests.support.services import postgres_url, redis_url
from tests.support.waiting import wait_until

FIXTURE = Path(__file__).parent / "fixtures" / "escape" / "escape.py"
BUILD_WAIT_S = 180.0
CANARY_AWS_SECRET = "canaryAwsSecret" + uuid.uuid4().hex
CANARY_AWS_KEY_ID = "AKIACANARY" + uuid.uuid4().hex[:10].upper()
CANARY_WEBHOOK = "canary-webhook-" + uuid.uuid4().hex
ATTEMPTS = (
    "read-secret-key",
    "read-database",
    "read-api-root",
    "read-environ",
    "connect-api",
    "connect-redis",
    "connect-postgres",
    "connect-host-address",
    "proxy-api",
    "proxy-redis",
    "proxy-metadata",
    "proxy-host-address",
    "write-data-dir",
    "kill-api",
)


@dataclass
class Escape:
    data_dir: Path
    published: Path
    deployment: dict[str, Any]
    log: str
    api_alive: bool
    marker: str
    app_key: str
    host_connections: list[str] = field(default_factory=list)

    def result(self, name: str) -> str:
        return (self.published / "results" / f"{name}.txt").read_text().strip()


def _host_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # UDP: nothing is sent, the route picks our address
        address: str = probe.getsockname()[0]
    return address


def _listen(connections: list[str]) -> tuple[socket.socket, int]:
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))  # noqa: S104 - the point: reachable on every host address
    listener.listen()

    def accept() -> None:
        while True:
            try:
                conn, peer = listener.accept()
            except OSError:
                return
            connections.append(str(peer))
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return listener, listener.getsockname()[1]


def _repo(path: Path) -> str:
    path.mkdir()
    shutil.copyfile(FIXTURE, path / "escape.py")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "escape")
    return path.as_uri()


@pytest.fixture(scope="module")
def escape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Escape]:
    root = tmp_path_factory.mktemp("escape")
    data_dir = (root / "data").resolve()
    marker = "scalemesh-escape-" + uuid.uuid4().hex[:10]
    app_key = app_private_key()
    env = cli_env(data_dir) | {
        "SCALEMESH_REDIS_URL": redis_url(),
        "SCALEMESH_RECONCILE_INTERVAL": "0.2",
        "SCALEMESH_GITHUB_APP_ID": "4242",
        "SCALEMESH_GITHUB_PRIVATE_KEY": app_key,
        "SCALEMESH_GITHUB_WEBHOOK_SECRET": CANARY_WEBHOOK,
        "AWS_ACCESS_KEY_ID": CANARY_AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": CANARY_AWS_SECRET,
    }
    migrated = run_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    connections: list[str] = []
    listener, host_port = _listen(connections)
    port = reserved_port()
    url = f"http://127.0.0.1:{port}"
    args = ("serve", "api", "--host", "127.0.0.1", "--port", str(port))
    try:
        with running(*args, env=env, logs=root / "logs") as api, http_client() as http:
            api.wait_until_ok(http, f"{url}/health")
            built = _build(http, url, api.process.pid, data_dir, root, marker, host_port)
            yield Escape(**built, app_key=app_key, host_connections=connections)
    finally:
        listener.close()


def _build(
    http: httpx.Client,
    url: str,
    api_pid: int,
    data_dir: Path,
    root: Path,
    marker: str,
    host_port: int,
) -> dict[str, Any]:
    body = {"email": "attacker@example.com", "password": PASSWORD}
    assert http.post(f"{url}/user/signup", json=body).status_code == 201
    token = http.post(f"{url}/user/login", json=body).json()["token"]
    postgres_port = urlsplit(postgres_url()).port or 5432
    project = {
        "name": "Escape",
        "repo": _repo(root / "repo"),
        "build_command": "python3 escape.py",
        "output_directory": "dist",
        "env": {
            "ESC_DATA_DIR": str(data_dir),
            "ESC_API_PID": str(api_pid),
            "ESC_API_PORT": str(urlsplit(url).port),
            "ESC_REDIS_PORT": str(urlsplit(redis_url()).port or 6379),
            "ESC_POSTGRES_PORT": str(postgres_port),
            "ESC_HOST_ADDRESS": _host_address(),
            "ESC_HOST_PORT": str(host_port),
            "ESC_MARKER": marker,
        },
    }
    created = http.post(f"{url}/project", json=project, headers=bearer(token))
    assert created.status_code == 201, created.text
    queued = http.post(f"{url}/deploy", json={"project": "escape"}, headers=bearer(token))
    assert queued.status_code == 202, queued.text
    deployment_id = queued.json()["id"]

    def finished() -> dict[str, Any] | None:
        answer = http.get(f"{url}/deployments/{deployment_id}", headers=bearer(token)).json()
        return answer if answer["state"] in ("ready", "failed", "cancelled") else None

    deployment = wait_until(finished, within=BUILD_WAIT_S, what="the escape build to finish")
    assert deployment is not None
    log = http.get(f"{url}/deployments/{deployment_id}/logs", headers=bearer(token)).text
    project_id = created.json()["id"]
    published = data_dir / "storage" / "__outputs" / str(project_id) / deployment_id
    alive = True
    try:
        os.kill(api_pid, 0)
    except ProcessLookupError:
        alive = False
    time.sleep(0.5)  # anything the build left behind has had time to show itself
    return {
        "data_dir": data_dir,
        "published": published,
        "deployment": deployment,
        "log": log,
        "api_alive": alive,
        "marker": marker,
    }


def test_the_hostile_build_still_deploys(escape: Escape) -> None:
    assert escape.deployment["state"] == "ready", escape.deployment
    assert (escape.published / "index.html").read_text() == "<h1>still deployed</h1>\n"
    assert "Commands run in: bubblewrap sandbox" in escape.log


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_every_way_out_is_blocked(escape: Escape, attempt: str) -> None:
    assert escape.result(attempt).startswith("blocked:"), escape.result(attempt)


def test_the_build_sees_no_secret_in_any_environment(escape: Escape) -> None:
    dump = (escape.published / "results" / "environ-dump.txt").read_text()
    everything = dump + escape.log + (escape.published / "results" / "env.txt").read_text()
    for canary in (
        CANARY_AWS_SECRET,
        CANARY_AWS_KEY_ID,
        CANARY_WEBHOOK,
        escape.app_key.splitlines()[1],
        "SCALEMESH_",
        "AWS_",
    ):
        assert canary not in everything


def test_the_builds_environment_is_only_what_its_spec_says(escape: Escape) -> None:
    names = {
        line.split("=", 1)[0]
        for line in (escape.published / "results" / "env.txt").read_text().splitlines()
    }
    proxies = {"HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "NO_PROXY", "no_proxy"}
    proxies |= {"YARN_HTTPS_PROXY", "YARN_HTTP_PROXY"}
    spec = {"CI", "HOME", "PATH", "LANG", "COREPACK_ENABLE_DOWNLOAD_PROMPT", *TOOLCHAIN_ENV}
    project = {name for name in names if name.startswith("ESC_")}
    assert names - proxies - spec - project <= {"PWD", "SHLVL", "_"}


def test_the_proxy_says_what_it_blocked(escape: Escape) -> None:
    blocked = [line for line in escape.log.splitlines() if "Blocked a connection to" in line]
    assert any("127.0.0.1" in line for line in blocked), escape.log
    assert any("169.254.169.254" in line for line in blocked)


def test_the_api_survives_and_its_files_are_untouched(escape: Escape) -> None:
    # The build wrote its own /tmp (a private tmpfs): the host's is untouched.
    assert escape.result("write-host-tmp").startswith("ESCAPED: wrote /tmp")
    assert escape.api_alive
    assert not list(escape.data_dir.rglob(f"{escape.marker}*"))
    assert not Path(f"/tmp/{escape.marker}-tmp").exists()  # noqa: S108 - the host's own /tmp


def test_nothing_of_the_build_outlives_it(escape: Escape) -> None:
    left = [
        pid
        for pid in os.listdir("/proc")
        if pid.isdigit() and escape.marker.encode() in _cmdline(pid)
    ]
    assert left == []


def test_the_host_listener_was_never_reached(escape: Escape) -> None:
    assert escape.host_connections == []


def test_links_dotfiles_and_the_race_publish_nothing_outside(escape: Escape) -> None:
    for name in ("passwd-link", "secret-link", "passwd-hard", "secret-hard", ".env"):
        assert not (escape.published / name).exists(), name
    race = escape.published / "race.txt"
    # Empty: read between the swapper's truncate and its write; never /etc/passwd's lines.
    assert not race.exists() or race.read_text() in ("harmless", "")
    for path in escape.published.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert b"root:x:0:0" not in text, path


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
