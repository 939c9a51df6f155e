"""`make dev` on other ports than 8000 and 8080, as a developer runs it when those are taken:
the API and the proxy listen there, and the links the API writes point there too."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx

from tests.support.make_targets import running_make, session_members
from tests.support.ports import LOOPBACK, reserved_port
from tests.support.processes import http_client
from tests.support.waiting import wait_until

START_S = 90.0
"""`make` checks the install, migrates, then starts the API and the proxy."""
STOP_S = 30
ADA = {"email": "ada@example.com", "password": "correct horse battery"}


def test_make_dev_on_other_ports_writes_links_to_those_ports(tmp_path: Path) -> None:
    api_port, proxy_port = reserved_port(), reserved_port()
    api = f"http://{LOOPBACK}:{api_port}"
    ports = {"DEV_API_PORT": api_port, "DEV_PROXY_PORT": proxy_port}
    logs = tmp_path / "make.log"

    with running_make("dev", tmp_path / "data", ports, logs) as make, http_client() as client:

        def output() -> str:
            return logs.read_text(errors="replace")

        def healthy() -> httpx.Response | None:
            assert make.poll() is None, f"make dev exited with {make.returncode}:\n{output()}"
            try:
                answer = client.get(f"{api}/health")
            except httpx.TransportError:
                return None
            return answer if answer.status_code == 200 else None

        wait_until(healthy, within=START_S, interval=0.2, what=lambda: f"make dev up:\n{output()}")
        assert client.post(f"{api}/user/signup", json=ADA).status_code == 201
        token = client.post(f"{api}/user/login", json=ADA).json()["token"]
        project = client.post(
            f"{api}/project",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": "My Site", "repo": "octocat/hello-world"},
        ).json()
        # What a browser on the dashboard sends: the session cookie, from the API's own origin.
        logout = client.post(
            f"{api}/user/logout",
            headers={"Origin": f"http://localhost:{api_port}", "Sec-Fetch-Site": "same-origin"},
        )
        client.close()  # no keep-alive connection left for the shutdown to wait on

        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C in the terminal
        make.wait(timeout=STOP_S)
        wait_until(
            lambda: not session_members(make.pid),
            within=STOP_S,
            what=lambda: f"everything make dev started stopped:\n{output()}",
        )

    assert project["production_url"] == f"http://my-site.localhost:{proxy_port}"
    assert logout.status_code == 204, logout.text
    text = output()
    assert f"proxy  http://<label>.localhost:{proxy_port}" in text
    assert "Traceback" not in text
