"""`scalemesh login` and the config file it saves, against a live API and other servers."""

from __future__ import annotations

import json
import os
import stat
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import cli_client
from tests.support.api import PASSWORD, bearer
from tests.support.cli_client import Account, Live, cli, save, scalemesh
from tests.support.ports import refused_port

# The shared fixtures, bound here: pytest finds a fixture by its name in the test's module.
live = cli_client.live
config = cli_client.config
account = cli_client.account


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
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}"
        code, _, err = cli(
            capsys,
            "login",
            "--api",
            url,
            "--email",
            "a@example.com",
            "--password-stdin",
            stdin="x\n",
        )

    assert code == 1
    assert err.startswith(f"scalemesh: cannot reach the Scale Mesh API at {url} (")
    assert "Traceback" not in err
    assert not config.exists()


class NotScaleMesh(BaseHTTPRequestHandler):
    """Some other web server: HTML, odd JSON, no websocket."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/json/"):
            self._answer(200, "application/json", b'{"welcome": true}')
        elif self.path.startswith("/projects"):
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


def test_an_answer_in_another_shape_says_so(
    other_server: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save(config, f"{other_server}/json", "token")

    code, _, err = cli(capsys, "projects")

    assert code == 1
    assert err.startswith("scalemesh: GET /projects answered in a shape this client does not know")
    assert err.endswith(f"is {other_server}/json a Scale Mesh API?\n")


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
