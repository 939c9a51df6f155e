"""The `scalemesh` command, run as a user runs it: a fresh process with its own data directory."""

from __future__ import annotations

import contextlib
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
from tests.support import cli_env

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "app.cli"]
COMMAND_TIMEOUT_S = 60
"""Generous: a slow two-core machine spends most of a short command importing."""
READY_TIMEOUT_S = 20
STOP_TIMEOUT_S = 10


# The shared fixtures, bound here: pytest finds a fixture by its name in the test's module.
env = cli_env.env


# Helpers ------------------------------------------------------------------------------------


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
