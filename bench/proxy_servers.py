"""How `bench/proxy.py` starts each server: argv, environment, nginx's config, the naive app.

The naive app is the boto3 pass-through the cached proxy on S3 is compared with; the bare app
(`--baselines`) is the least an ASGI app can do under the proxy's server: the proxy's own
answers, status, headers and bytes, from memory, so only the app differs.
"""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Mapping
from pathlib import Path

from app.cli.serving import FACTORIES, PROXY_PROTOCOL, PROXY_SERVER
from bench.proxy_measure import url_path
from bench.proxy_processes import fetch

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
SECRET_KEY = "bench-secret-key-" + "x" * 32

NAIVE_APP = '''
"""One boto3 get_object per request, in a thread: what a first version of the proxy would do."""

import os

import anyio.to_thread
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

BUCKET = os.environ["BENCH_BUCKET"]
PREFIX = os.environ["BENCH_PREFIX"]
# The same client settings as `app.storage.s3.s3_client`, so only the caching differs.
CLIENT = boto3.client(
    "s3",
    endpoint_url=os.environ["AWS_ENDPOINT_URL"],
    config=Config(
        max_pool_connections=64,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    ),
)


async def app(scope, receive, send):
    key = PREFIX + (scope["path"].lstrip("/") or "index.html")

    def get():
        return CLIENT.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    try:
        status, body = 200, await anyio.to_thread.run_sync(get)
    except ClientError:
        status, body = 404, b"not found"
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
'''


BARE_APP = '''
"""The proxy's answers from memory, with nothing else to do: the floor of any ASGI app."""

import json
import os
from pathlib import Path

ANSWERS = {
    path: (
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(name.encode(), value.encode()) for name, value in headers],
        },
        {"type": "http.response.body", "body": Path(file).read_bytes()},
    )
    for path, (headers, file) in json.loads(os.environ["BENCH_ANSWERS"]).items()
}
MISSING = (
    {"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]},
    {"type": "http.response.body", "body": b""},
)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    start, body = ANSWERS.get(scope["path"], MISSING)
    await send(start)
    await send(body)
'''

SERVER_HEADERS = frozenset({"server", "date"})
"""Headers the server adds itself (uvicorn's own), left out of the bare app's answers."""


def nginx_argv(
    nginx: str, work: Path, site: Path, port: int, *, sendfile: bool = True
) -> list[str]:
    """nginx in the foreground with its config, temp files and log in `work` (made here)."""
    work.mkdir(exist_ok=True)
    config = nginx_config(work, site, port, sendfile=sendfile)
    error_log = str(work / "nginx-error.log")
    return [nginx, "-e", error_log, "-p", str(work), "-c", str(config), "-g", "daemon off;"]


def nginx_config(work: Path, site: Path, port: int, *, sendfile: bool = True) -> Path:
    # As root the worker would drop to `nobody`, who cannot enter our 0700 temp directory.
    user = pwd.getpwuid(os.geteuid()).pw_name
    temp = work / "nginx-temp"
    temp.mkdir()
    config = work / "nginx.conf"
    config.write_text(f"""
user {user};
worker_processes 1;
error_log {work}/nginx-error.log warn;
pid {work}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    types {{ text/html html; text/javascript js; application/json json; }}
    default_type application/octet-stream;
    access_log off;
    sendfile {"on" if sendfile else "off"};
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        server_name _;
        root {site};
        location / {{ try_files $uri $uri/index.html =404; }}
    }}
}}
""")
    return config


def proxy_env(work: Path, storage_url: str, endpoint: str | None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SCALEMESH_")}
    env.update(
        SCALEMESH_DATA_DIR=str(work / "data"),
        SCALEMESH_DATABASE_URL=f"sqlite:///{work / 'data' / 'bench.sqlite3'}",
        SCALEMESH_STORAGE_URL=storage_url,
        SCALEMESH_ROOT_DOMAIN="localhost",
        SCALEMESH_SECRET_KEY=SECRET_KEY,
    )
    env.pop("AWS_ENDPOINT_URL", None)
    if endpoint is not None:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def proxy_argv(server: str, port: int) -> list[str]:
    """How to start the proxy under `server`: our own command for the one it uses, granian
    with the same factory for the other."""
    if server == PROXY_SERVER:
        return [
            PYTHON,
            "-m",
            "app.cli",
            "serve",
            "proxy",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    where = ["--host", "127.0.0.1", "--port", str(port)]
    quiet = ["--log-level", "warning"]
    options = ["--interface", "asgi", "--loop", "uvloop", "--no-ws"]
    return [PYTHON, "-m", "granian", "--factory", *options, *where, *quiet, FACTORIES["proxy"]]


def bare_argv(app_dir: Path) -> list[str]:
    """The bare app under uvicorn, with the protocol `scalemesh serve proxy` gives it (which
    hands every request of an app that is not the proxy to uvicorn's ASGI path)."""
    options = ["--http", PROXY_PROTOCOL, "--no-access-log", "--no-proxy-headers"]
    where = ["--host", "127.0.0.1", "--port", "0", "--log-level", "warning"]
    return [PYTHON, "-m", "uvicorn", *options, "--app-dir", str(app_dir), *where, "bare_asgi:app"]


def bare_env(port: int, site: Path, files: Mapping[str, bytes]) -> dict[str, str]:
    """The bare app's environment: the answers the proxy on `port` gives for `files`."""
    answers = {}
    for path in files:
        _, headers, _ = fetch(port, url_path(path))
        kept = [(name, value) for name, value in headers.items() if name not in SERVER_HEADERS]
        answers[url_path(path)] = (kept, str(site / path))
    return {**os.environ, "BENCH_ANSWERS": json.dumps(answers)}
