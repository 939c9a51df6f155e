"""The `scalemesh` command, run as a user runs it: a fresh process with its own data directory."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.cli import main
from app.secret_key import SECRET_KEY_FILE
from proxy.asgi import HEALTH_PATH

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "app.cli"]
PASSWORD = "correct horse battery"
COMMAND_TIMEOUT_S = 60
"""Generous: a slow two-core machine spends most of a short command importing."""
READY_TIMEOUT_S = 20
STOP_TIMEOUT_S = 10


# Helpers ------------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The test's own environment: no SCALEMESH_* from outside, a fresh data directory."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SCALEMESH_")}
    environ["SCALEMESH_DATA_DIR"] = str(tmp_path / "data")
    return environ


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_env(request: pytest.FixtureRequest, env: dict[str, str]) -> dict[str, str]:
    """`env` on each engine: SQLite in the data directory, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        env["SCALEMESH_DATABASE_URL"] = request.getfixturevalue("postgres_databases").new()
    return env


def run_cli(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=env,
        cwd=ROOT,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
        # No controlling terminal: getpass then reads the test's stdin, not the developer's tty.
        start_new_session=True,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Running:
    """A server command in the background, its output in files (pipes could fill and block it)."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: Path) -> None:
        self.process = process
        self.stderr_path = stderr

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_until_ok(self, client: httpx.Client, url: str) -> httpx.Response:
        """Poll `url` until it answers 200; fail early if the process dies."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            exit_code = self.process.poll()
            assert exit_code is None, f"exited with {exit_code} before answering:\n{self.stderr}"
            try:
                response = client.get(url)
            except httpx.TransportError:
                pass
            else:
                if response.status_code == 200:
                    return response
            assert time.monotonic() < deadline, f"{url} not ready in time:\n{self.stderr}"
            time.sleep(0.2)

    def wait_for_stderr(self, text: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while text not in self.stderr:
            assert self.process.poll() is None, f"exited before printing {text!r}:\n{self.stderr}"
            assert time.monotonic() < deadline, f"{text!r} not printed in time:\n{self.stderr}"
            time.sleep(0.1)

    def stop(self, *signals: signal.Signals) -> int:
        for sig in signals:
            self.process.send_signal(sig)
            # Apart, so the kernel does not merge two pending signals of the same kind into one.
            time.sleep(0.05)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            names = "+".join(sig.name for sig in signals)
            pytest.fail(f"still running {STOP_TIMEOUT_S} s after {names}:\n{self.stderr}")


@contextlib.contextmanager
def running(
    *args: str, env: dict[str, str], logs: Path, stdin: int = subprocess.DEVNULL
) -> Iterator[Running]:
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "stdout").open("wb") as out, (logs / "stderr").open("wb") as err:
        process = subprocess.Popen(
            [*CLI, *args],
            env=env,
            cwd=ROOT,
            stdin=stdin,
            stdout=out,
            stderr=err,
            # Its own process group: cleanup below can also reach uvicorn's worker processes.
            start_new_session=True,
        )
        try:
            yield Running(process, logs / "stderr")
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)
            if process.stdin is not None:
                process.stdin.close()


def http_client() -> httpx.Client:
    # trust_env=False: an HTTP(S)_PROXY in the environment must not capture localhost requests.
    return httpx.Client(timeout=5, trust_env=False)


# --help -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["dev"],
        ["serve"],
        ["serve", "api"],
        ["serve", "proxy"],
        ["migrate"],
        ["user"],
        ["user", "create"],
        ["settings"],
    ],
    ids=lambda command: " ".join(command) or "scalemesh",
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])

    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {' '.join(['scalemesh', *command])} ")
    description = out.split("\n\n")[1]
    assert description.strip(), "each command says in one line what it does"


def test_runs_as_a_module_and_says_what_it_offers(env: dict[str, str]) -> None:
    result = run_cli("--help", env=env)

    assert result.returncode == 0
    for command in ("dev", "serve", "migrate", "user", "settings"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["serve", "api", "--port", "70000"], "is not a port"),
        (["serve", "proxy", "--workers", "0"], "must be 1 or more"),
        (["dev", "--api-port", "http"], "is not a whole number"),
        (["serve"], "required"),
    ],
)
def test_bad_usage_exits_2_naming_the_problem(
    args: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)

    assert exited.value.code == 2
    assert problem in capsys.readouterr().err


# migrate, user create -----------------------------------------------------------------------


def test_migrate_creates_the_database_then_has_nothing_to_do(env: dict[str, str]) -> None:
    database_file = Path(env["SCALEMESH_DATA_DIR"]) / "scalemesh.sqlite3"

    first = run_cli("migrate", env=env)
    second = run_cli("migrate", env=env)

    assert first.returncode == 0, first.stderr
    assert database_file.is_file()
    applied = first.stdout.split()
    assert applied
    assert "up to date" not in first.stdout
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "database is up to date"


def test_user_create_makes_an_account_once(db_env: dict[str, str]) -> None:
    assert run_cli("migrate", env=db_env).returncode == 0

    created = run_cli(
        "user", "create", "Ada@Example.com", "--password-stdin", env=db_env, stdin=PASSWORD + "\n"
    )
    again = run_cli(
        "user", "create", "ada@example.com", "--password-stdin", env=db_env, stdin=PASSWORD + "\n"
    )

    assert created.returncode == 0, created.stderr
    words = created.stdout.split()
    assert "ada@example.com" in words
    assert any(word.isdigit() for word in words), "prints the new user's id"
    assert again.returncode == 1
    assert again.stderr.startswith("scalemesh: ")
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr


@pytest.mark.parametrize(
    ("email", "password", "problem"),
    [
        ("ada@example.com", "short", "at least 8 characters"),
        ("ada@example.com", "", "no password on standard input"),
        ("not-an-email", PASSWORD, "not an email address"),
    ],
)
def test_user_create_explains_bad_input(
    env: dict[str, str], email: str, password: str, problem: str
) -> None:
    assert run_cli("migrate", env=env).returncode == 0

    result = run_cli("user", "create", email, "--password-stdin", env=env, stdin=password)

    assert result.returncode == 1
    assert result.stderr.startswith("scalemesh: ")
    assert problem in result.stderr
    assert "Traceback" not in result.stderr


def test_user_create_asks_for_migrations_first(env: dict[str, str]) -> None:
    result = run_cli(
        "user", "create", "ada@example.com", "--password-stdin", env=env, stdin=PASSWORD
    )

    assert result.returncode == 1
    assert "run `scalemesh migrate` first" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli("migrate", env=env).stdout.strip() != "database is up to date"


@pytest.mark.parametrize(
    ("typed", "exit_code", "said"),
    [
        (f"{PASSWORD}\n{PASSWORD}\n", 0, "ada@example.com"),
        (f"{PASSWORD}\nsomething else\n", 1, "the passwords do not match"),
        ("", 1, "no password given"),
    ],
    ids=["same twice", "different", "nothing"],
)
def test_user_create_prompts_twice_for_the_password(
    env: dict[str, str], typed: str, exit_code: int, said: str
) -> None:
    assert run_cli("migrate", env=env).returncode == 0

    result = run_cli("user", "create", "ada@example.com", env=env, stdin=typed)

    assert result.returncode == exit_code, result.stderr
    assert said in result.stdout + result.stderr
    assert "Password: " in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_ctrl_c_at_the_password_prompt_exits_130_quietly(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert run_cli("migrate", env=env).returncode == 0
    args = ["user", "create", "ada@example.com"]

    with running(*args, env=env, logs=tmp_path / "logs", stdin=subprocess.PIPE) as create:
        create.wait_for_stderr("Password: ")
        exit_code = create.stop(signal.SIGINT)

    assert exit_code == 130
    assert "Traceback" not in create.stderr
    assert "KeyboardInterrupt" not in create.stderr


def test_an_unusable_data_directory_is_reported_without_a_traceback(
    env: dict[str, str], tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    env["SCALEMESH_DATA_DIR"] = str(not_a_directory)

    result = run_cli("migrate", env=env)

    assert result.returncode == 1
    assert result.stderr.startswith("scalemesh: ")
    assert str(not_a_directory) in result.stderr
    assert "Traceback" not in result.stderr


# settings and configuration errors ----------------------------------------------------------


def test_settings_prints_every_setting_with_secrets_masked(env: dict[str, str]) -> None:
    env["SCALEMESH_DATABASE_URL"] = "postgresql://scalemesh:hunter2-db-password@db:5432/scalemesh"

    result = run_cli("settings", env=env)

    assert result.returncode == 0, result.stderr
    key = (Path(env["SCALEMESH_DATA_DIR"]) / SECRET_KEY_FILE).read_text().strip()
    assert len(key) >= 32
    assert key not in result.stdout + result.stderr
    assert "hunter2-db-password" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "SCALEMESH_SECRET_KEY=***" in lines
    assert "SCALEMESH_DATABASE_URL=***" in lines
    assert f"SCALEMESH_DATA_DIR={env['SCALEMESH_DATA_DIR']}" in lines
    assert "SCALEMESH_BUILD_TIMEOUT=900" in lines


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SCALEMESH_RUNNER", "kubernetes"), ("SCALEMESH_BUILD_TIMEOUT", "abc")],
)
@pytest.mark.parametrize(
    "command", [["settings"], ["migrate"], ["dev"], ["serve", "proxy"]], ids=" ".join
)
def test_bad_configuration_exits_2_naming_the_variable(
    env: dict[str, str], command: list[str], variable: str, value: str
) -> None:
    env[variable] = value

    result = run_cli(*command, env=env)

    assert result.returncode == 2
    assert result.stderr.startswith("scalemesh: configuration error: ")
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


# dev and serve ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signals",
    [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
    ids=["ctrl-c", "sigterm", "ctrl-c-twice"],
)
def test_dev_serves_api_and_proxy_until_stopped(
    env: dict[str, str], tmp_path: Path, signals: list[signal.Signals]
) -> None:
    api_port, proxy_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    proxy = f"http://127.0.0.1:{proxy_port}"

    args = ["dev", "--api-port", str(api_port), "--proxy-port", str(proxy_port)]
    with running(*args, env=env, logs=tmp_path / "logs") as dev, http_client() as client:
        health = dev.wait_until_ok(client, f"{api}/health")
        proxy_health = dev.wait_until_ok(client, f"{proxy}{HEALTH_PATH}")
        missing = client.get(f"{proxy}/", headers={"Host": "x.localhost"})
        client.close()  # no keep-alive connection left for the shutdown to wait on
        exit_code = dev.stop(*signals)

    assert health.json()["status"] == "ok"
    assert proxy_health.json() == {"status": "ok"}
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "text/html; charset=utf-8"
    assert "No deployment here" in missing.text
    assert "x.localhost" in missing.text
    assert exit_code == 0, dev.stderr
    stderr = dev.stderr
    assert f"http://127.0.0.1:{api_port}" in stderr
    assert f"http://<label>.localhost:{proxy_port}" in stderr
    assert str(Path(env["SCALEMESH_DATA_DIR"]).resolve()) in stderr
    assert "Traceback" not in stderr
    assert "Shutting down" in stderr


def test_dev_stops_everything_when_a_port_is_taken(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])

        result = run_cli("dev", "--api-port", port, "--proxy-port", str(free_port()), env=env)

    assert result.returncode == 1
    assert f"could not start the API on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_proxy_reports_a_port_in_use(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])

        result = run_cli("serve", "proxy", "--host", "127.0.0.1", "--port", port, env=env)

    assert result.returncode == 1
    assert f"could not start the proxy on 127.0.0.1:{port}: " in result.stderr
    assert "in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert "backtrace" not in result.stderr


@pytest.mark.parametrize(("part", "health_path"), [("proxy", HEALTH_PATH), ("api", "/health")])
def test_serve_answers_until_sigterm(
    env: dict[str, str], tmp_path: Path, part: str, health_path: str
) -> None:
    assert run_cli("migrate", env=env).returncode == 0
    port = free_port()
    args = ["serve", part, "--host", "127.0.0.1", "--port", str(port)]

    with running(*args, env=env, logs=tmp_path / "logs") as served, http_client() as client:
        health = served.wait_until_ok(client, f"http://127.0.0.1:{port}{health_path}")
        client.close()
        exit_code = served.stop(signal.SIGTERM)

    assert health.json()["status"] == "ok"
    assert exit_code == 0, served.stderr
    assert "Traceback" not in served.stderr


@pytest.mark.parametrize(
    ("part", "health_path", "started"),
    [
        ("api", "/health", "Started server process"),  # uvicorn
        ("proxy", HEALTH_PATH, "Started worker-"),  # granian
    ],
)
def test_serve_with_workers_logs_json_and_stops_on_sigterm(
    env: dict[str, str], tmp_path: Path, part: str, health_path: str, started: str
) -> None:
    assert run_cli("migrate", env=env).returncode == 0
    port = free_port()
    args = ["serve", part, "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]

    with running(*args, env=env, logs=tmp_path / "logs") as served, http_client() as client:
        health = served.wait_until_ok(client, f"http://127.0.0.1:{port}{health_path}")
        client.close()
        exit_code = served.stop(signal.SIGTERM)

    assert health.json()["status"] == "ok"
    assert exit_code == 0, served.stderr
    records = [json.loads(line) for line in served.stderr.splitlines()]
    workers = {record["msg"] for record in records if started in record["msg"]}
    assert len(workers) == 2, "each worker logs as JSON too"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_api_refuses_an_unmigrated_database(env: dict[str, str], workers: str) -> None:
    port = str(free_port())
    result = run_cli("serve", "api", "--port", port, "--workers", workers, env=env)

    assert result.returncode == 1
    assert "run `scalemesh migrate` first" in result.stderr
    assert "Traceback" not in result.stderr
