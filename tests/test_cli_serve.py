"""`scalemesh dev` and `scalemesh serve`, run as a user runs them: servers that stop on signals."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest

from proxy.asgi import HEALTH_PATH
from tests.support import cli_env
from tests.support.ports import reserved_port
from tests.support.processes import http_client, run_cli, running
from tests.support.waiting import wait_until

# The shared fixtures, bound here: pytest finds a fixture by its name in the test's module.
env = cli_env.env
migrated_env = cli_env.migrated_env


# dev and serve ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signals",
    [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
    ids=["ctrl-c", "sigterm", "ctrl-c-twice"],
)
def test_dev_serves_api_and_proxy_until_stopped(
    env: dict[str, str], tmp_path: Path, signals: list[signal.Signals]
) -> None:
    api_port, proxy_port = reserved_port(), reserved_port()
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

        result = run_cli("dev", "--api-port", port, "--proxy-port", str(reserved_port()), env=env)

    assert result.returncode == 1
    assert f"could not start the API on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_proxy_reports_a_port_in_use(env: dict[str, str], workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])

        args = ["serve", "proxy", "--host", "127.0.0.1", "--port", port, "--workers", workers]
        result = run_cli(*args, env=env)

    assert result.returncode == 1
    assert f"could not start the proxy on 127.0.0.1:{port}; see the log above" in result.stderr
    assert "in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("part", "health_path"), [("proxy", HEALTH_PATH), ("api", "/health")])
def test_serve_answers_until_sigterm(
    migrated_env: dict[str, str], tmp_path: Path, part: str, health_path: str
) -> None:
    port = reserved_port()
    args = ["serve", part, "--host", "127.0.0.1", "--port", str(port)]

    with (
        running(*args, env=migrated_env, logs=tmp_path / "logs") as served,
        http_client() as client,
    ):
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
        ("proxy", HEALTH_PATH, "Started server process"),
    ],
)
def test_serve_with_workers_logs_json_and_stops_on_sigterm(
    migrated_env: dict[str, str], tmp_path: Path, part: str, health_path: str, started: str
) -> None:
    port = reserved_port()
    args = ["serve", part, "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]

    with (
        running(*args, env=migrated_env, logs=tmp_path / "logs") as served,
        http_client() as client,
    ):
        health = served.wait_until_ok(client, f"http://127.0.0.1:{port}{health_path}")
        client.close()
        # One worker answering is not both up: a SIGTERM while the second is still starting
        # leaves that one to its kill timeout, as long as this test's own wait.
        wait_until(
            lambda: sum(started in line for line in served.stderr.splitlines()) >= 2,
            what="both workers started",
        )
        exit_code = served.stop(signal.SIGTERM)

    assert health.json()["status"] == "ok"
    assert exit_code == 0, served.stderr
    records = [json.loads(line) for line in served.stderr.splitlines()]
    workers = {record["msg"] for record in records if started in record["msg"]}
    assert len(workers) == 2, "each worker logs as JSON too"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_api_refuses_an_unmigrated_database(env: dict[str, str], workers: str) -> None:
    port = str(reserved_port())
    result = run_cli("serve", "api", "--port", port, "--workers", workers, env=env)

    assert result.returncode == 1
    assert "run `scalemesh migrate` first" in result.stderr
    assert "Traceback" not in result.stderr
