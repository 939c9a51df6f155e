"""`make dev-tls` as a developer runs it: Scale Mesh with Caddy in front on its local CA.

The API and a deployment hostname answer over HTTPS through Caddy, checked against the CA the
target prints; a Ctrl-C (SIGINT to the terminal's process group) stops everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.support.make_targets import running_make, session_members
from tests.support.ports import LOOPBACK, reserved_port
from tests.support.waiting import wait_until

START_S = 90.0
"""`make` checks the install, migrates, then starts the API, the proxy and Caddy."""
STOP_S = 30


def curl(host: str, port: int, path: str, root_cert: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "curl", "--silent", "--show-error", "--max-time", "20", "--noproxy", "*",
            "--resolve", f"{host}:{port}:{LOOPBACK}", "--cacert", str(root_cert),
            "--write-out", "\n%{http_code}", f"https://{host}:{port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip


def test_make_dev_tls_serves_the_api_and_deployments_over_https_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    https = reserved_port()
    ports = {
        "DEV_TLS_PORT": https,
        "DEV_TLS_HTTP_PORT": reserved_port(),
        "DEV_API_PORT": reserved_port(),
        "DEV_PROXY_PORT": reserved_port(),
    }
    logs = tmp_path / "make.log"
    root_cert = data_dir / "caddy" / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    with running_make("dev-tls", data_dir, ports, logs) as make:

        def output() -> str:
            return logs.read_text(errors="replace")

        def up() -> bool:
            assert make.poll() is None, f"make dev-tls exited with {make.returncode}:\n{output()}"
            return "Scale Mesh is running" in output() and root_cert.is_file()

        wait_until(up, within=START_S, interval=0.2, what=lambda: f"make dev-tls up:\n{output()}")
        health = wait_until(
            lambda: (
                (answer := curl("localhost", https, "/health", root_cert)).returncode == 0
                and answer
            ),
            interval=0.2,
            what=lambda: f"the API over HTTPS:\n{output()}",
        )
        deployment = curl("hello.scalemesh.localhost", https, "/", root_cert)

        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in the terminal
        make.wait(timeout=STOP_S)
        # Caddy and `scalemesh dev` ran in process groups of their own: gone all the same.
        wait_until(
            lambda: not session_members(make.pid),
            within=STOP_S,
            what=lambda: f"everything make dev-tls started stopped:\n{output()}",
        )

    text = output()
    assert f"CA to trust     {root_cert}" in text
    assert f"deployments     https://<label>.scalemesh.localhost:{https}" in text
    assert health.stdout.startswith('{"status":"ok"'), health.stdout
    # Nothing is deployed at `hello` yet: the proxy's own page, through Caddy, over TLS.
    assert deployment.returncode == 0, deployment.stderr
    assert deployment.stdout.endswith("\n404")
    assert "No deployment here" in deployment.stdout
    # Both stopped on the one Ctrl-C, gracefully: Caddy says so, uvicorn finished both apps.
    assert '"signal":"SIGINT"' in text
    assert "Finished server process" in text
    assert "Traceback" not in text
