"""Benchmark the proxy against nginx on a directory and against a naive S3 pass-through.

    .venv/bin/python bench/proxy.py [--duration 10] [--connections 32] [--seed 1] [--rounds 5]
                                    [--servers uvicorn,granian]

Needs `nginx` and `wrk` (Debian: `apt-get install -y nginx wrk`). Seeds one deployment, as the
builder and the API would leave it (a user, a project, a ready deployment behind the alias
`web`, its files and manifest in storage), with a 2 KB `index.html` and a 150 KB compressible
`assets/app-<hash>.js`, then measures each file with `wrk -t2 -c32 -d10s --latency`, one
server at a time, all on 127.0.0.1:
  (a) nginx, one worker, serving the deployment's directory (`try_files`);
  (b) the proxy on local storage (`file://`);
  (c) the proxy on S3 (a moto server in its own process);
  (d) a naive ASGI app under uvicorn: one boto3 `get_object` per request, same moto and keys.
(b) and (c) run once per ASGI server in `--servers` (uvicorn with uvloop and httptools, granian),
one worker each like nginx; the server `scalemesh serve proxy` uses is started through that
command, the others directly with the same app factory. The targets are checked on the rows
of the server `scalemesh serve proxy` uses; the others are there to compare.
All servers start first and stay up (idle but for their own turn); each of `--rounds` rounds
measures a file on every server back to back, then the next file. The table shows each
server's median req/s and p99; a ratio is the median of the rounds' own ratios, each from
runs seconds apart, so a burst of other work on the machine does not decide a comparison.
Each round's ratios are printed too, to show the spread.
Requests carry `Host: web.localhost` and no Accept-Encoding, so identity bytes are compared.
Prints req/s and p99 per server and file, the ratios b/a and c/d, and PASS/FAIL against the
targets; exits 1 when a target fails, 2 when a tool is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import os
import pwd
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import database  # noqa: E402 - after the path tweak that lets this run as a script
from app.serving import FACTORIES, PROXY_SERVER  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.storage import Storage  # noqa: E402
from app.storage.choice import storage_from_settings  # noqa: E402
from app.storage.s3 import s3_client  # noqa: E402
from app.tables import Alias, Deployment, Project, User  # noqa: E402
from builder import content  # noqa: E402
from builder.spec import MANIFEST, output_prefix  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")
BUCKET = "bench"
LABEL = "web"
HOST = f"{LABEL}.localhost"
INDEX = "index.html"
INDEX_BYTES = 2 * 1024
ASSET_BYTES = 150 * 1024
SECRET_KEY = "bench-secret-key-" + "x" * 32
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10
WARM_REQUESTS = 20
WARM_SECONDS = 2
INSTALL_HINT = "apt-get install -y nginx wrk"
SERVERS = ("uvicorn", "granian")

# Targets from the issue.
LOCAL_VS_NGINX_SMALL = 0.75
LOCAL_VS_NGINX_LARGE = 0.5
CACHED_VS_NAIVE = 10.0
P99_LIMIT_MS = 10.0

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


# --- the site -------------------------------------------------------------------------------


def make_files(seed: int) -> dict[str, bytes]:
    """A 2 KB page and a 150 KB content-hashed script of compressible, random-ish text."""
    rng = random.Random(seed)  # noqa: S311 - test data, reproducible by seed
    words = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz_", k=rng.randint(2, 10)))
        for _ in range(2000)
    ]
    punctuation = ["(", ")", "{", "}", ";", "=>", ".", ",", "=", "\n", "  "]
    script = bytearray()
    while len(script) < ASSET_BYTES:
        token = rng.choice(words) if rng.random() < 0.8 else rng.choice(punctuation)
        script += token.encode() + b" "
    asset = bytes(script[:ASSET_BYTES])
    asset_path = f"assets/app-{hashlib.sha256(asset).hexdigest()[:8]}.js"
    page = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<title>bench</title>\n<script type="module" src="/{asset_path}"></script>\n'
        "</head>\n<body>\n<main>\n"
    ).encode()
    while len(page) < INDEX_BYTES - 40:
        page += f"<p>{' '.join(rng.choices(words, k=8))}</p>\n".encode()
    page = (page + b"</main>\n</body>\n</html>\n").ljust(INDEX_BYTES, b"\n")[:INDEX_BYTES]
    return {INDEX: page, asset_path: asset}


def manifest(files: Mapping[str, bytes], project_id: int, deployment_id: str) -> dict[str, Any]:
    return {
        "version": 1,
        "deployment_id": deployment_id,
        "project_id": project_id,
        "sha": "b" * 40,
        "framework": "static",
        "output_directory": ".",
        "files": {
            path: {
                "size": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "content_type": content.content_type(path),
                "cache_control": content.cache_control(path),
                "encodings": [],
            }
            for path, body in files.items()
        },
    }


async def ship(storage: Storage, prefix: str, files: Mapping[str, bytes], record: bytes) -> None:
    """Write what the builder would: the files, then the manifest."""
    for path, body in files.items():
        await storage.put(
            prefix + path,
            body,
            content_type=content.content_type(path),
            cache_control=content.cache_control(path),
        )
    await storage.put(prefix + MANIFEST, record, content_type="application/json")


async def seed(settings: Settings, deployment_id: str) -> int:
    """A user, a project `web`, and its ready deployment behind the alias `web`."""
    database.bind(database.make_engine(settings.database))
    no_login = "x"  # not an argon2 hash: nobody logs in as this user
    user = await User.insert(User(email="bench@example.com", password_hash=no_login))
    project = await Project.insert(
        Project(slug=LABEL, name=LABEL, owner=user[0]["id"], git_url="https://x/y.git")
    )
    project_id = int(project[0]["id"])
    await Deployment.insert(
        Deployment(id=deployment_id, project=project_id, sha="b" * 40, state="ready")
    )
    await Alias.insert(Alias(hostname=LABEL, project=project_id, deployment=deployment_id))
    return project_id


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(port: int, path: str, timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    """One GET with our Host header and no Accept-Encoding (http.client sends `identity`)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": HOST})
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        connection.close()


class Processes:
    """Every subprocess this run starts, stopped in reverse order at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Path:
        log = self.logs / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(  # noqa: S603 - fixed argv of our own tools
                argv, env=dict(env) if env is not None else None, stdout=sink, stderr=sink
            )
        self.running.append((name, process))
        return log

    def wait_http(self, name: str, port: int, path: str) -> None:
        """Until `path` answers 200 on `port`, or the process dies, or time runs out."""
        process = dict(self.running)[name]
        give_up = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")
            try:
                if fetch(port, path, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > give_up:
                raise RuntimeError(f"{name} did not answer on :{port}:\n{self.tail(name)}")
            time.sleep(0.1)

    def tail(self, name: str) -> str:
        lines = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()
        return "\n".join(lines[-20:])

    def stop_all(self) -> None:
        while self.running:
            _, process = self.running.pop()
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


@contextmanager
def processes(logs: Path) -> Iterator[Processes]:
    running = Processes(logs)
    try:
        yield running
    finally:
        running.stop_all()


def nginx_config(work: Path, site: Path, port: int) -> Path:
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
    sendfile on;
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


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Result:
    server: str
    file: str
    requests_per_s: float
    p99_ms: float
    errors: int
    """Socket errors plus non-2xx/3xx answers wrk saw."""
    round: int = 0
    """Which round measured it (0 in the table's medians)."""


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk(port: int, path: str, seconds: int, connections: int) -> tuple[float, float, int]:
    """req/s, p99 in ms and error count of one wrk run."""
    argv = [
        shutil.which("wrk") or "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-H",
        f"Host: {HOST}",
        f"http://127.0.0.1:{port}{path}",
    ]
    done = subprocess.run(  # noqa: S603 - fixed argv
        argv, capture_output=True, text=True, timeout=seconds + 30, check=True
    )
    out = done.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
    if rate is None or p99 is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}\n{done.stderr}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return float(rate.group(1)), float(p99.group(1)) * _UNITS_MS[p99.group(2)], errors


def url_path(path: str) -> str:
    return "/" if path == INDEX else f"/{path}"


def check_and_warm(
    server: str, port: int, files: Mapping[str, bytes], args: argparse.Namespace
) -> None:
    """Refuse a server that does not answer each file's own bytes; then warm it up."""
    for path, body in files.items():
        status, headers, got = fetch(port, url_path(path))
        if (
            status != 200
            or got != body
            or headers.get("content-encoding", "identity") != "identity"
        ):
            raise RuntimeError(
                f"{server} answered {status} for {url_path(path)}, not the file's bytes"
            )
        for _ in range(WARM_REQUESTS):
            fetch(port, url_path(path))
        wrk(port, url_path(path), WARM_SECONDS, args.connections)


def measure_once(
    server: str, port: int, path: str, body: bytes, number: int, args: argparse.Namespace
) -> Result:
    rate, p99, errors = wrk(port, url_path(path), args.duration, args.connections)
    label = f"{path} ({len(body) // 1024} KB)"
    print(f"  {server:<28} {label:<32} {rate:9.0f} req/s  p99 {p99:7.2f} ms", flush=True)
    return Result(server, label, rate, p99, errors, number)


# --- the table ------------------------------------------------------------------------------


def print_table(rounds: list[Result], args: argparse.Namespace) -> bool:
    """Print the results, ratios and targets; True when every target passes."""
    results = median_rounds(rounds)
    print(
        f"\nwrk -t2 -c{args.connections} -d{args.duration}s --latency, "
        f"{os.cpu_count()} CPUs, all on 127.0.0.1, median of {args.rounds} round(s)\n"
    )
    columns = f"| {'server':<28} | {'file':<32} | {'req/s':>9} | {'p99 ms':>8} | {'errors':>6} |"
    print(columns)
    print("|" + "|".join(":" + "-" * (len(cell) - 1) for cell in columns.split("|")[1:-1]) + "|")
    for row in results:
        print(
            f"| {row.server:<28} | {row.file:<32} | {row.requests_per_s:9.0f} "
            f"| {row.p99_ms:8.2f} | {row.errors:6d} |"
        )

    # Keyed by (a)…(d) plus the server name after the comma, e.g. ("(b)", "granian").
    by = {(row.server[:3], row.server.rpartition(", ")[2], row.file): row for row in results}
    named = {(row.server[:3], row.server.rpartition(", ")[2]): row.server for row in results}
    nginx = results[0].server.rpartition(", ")[2]
    naive = results[-1].server.rpartition(", ")[2]
    small, large = dict.fromkeys(row.file for row in results)
    spreads: list[str] = []
    ok = True

    def ratio(top: tuple[str, str], bottom: tuple[str, str], file: str) -> float:
        """The median of the rounds' ratios: each pair measured back to back in one round."""
        ratios = round_ratios(rounds, named[top], named[bottom], file)
        spreads.append(
            f"{top[0][1]}/{bottom[0][1]}, {top[1]}, {file}: " + " ".join(f"{r:.2f}" for r in ratios)
        )
        return statistics.median(ratios)

    def check(name: str, value: float, passed: bool, goal: str, *, counts: bool) -> None:
        nonlocal ok
        verdict = "PASS" if passed else "FAIL"
        if counts:
            ok = ok and passed
        else:
            verdict = verdict.lower()  # another server, shown to compare: not a target
        print(f"| {name:<58} | {value:8.2f} | {goal:<8} | {verdict:<4} |")

    print(
        f"\n| {'target (lower-case verdict: not the server we ship)':<58} | {'value':>8} ", end=""
    )
    print(f"| {'goal':<8} | {'':<4} |")
    print(f"|:{'-' * 59}|{'-' * 9}:|:{'-' * 9}|:{'-' * 5}|")
    for server in args.servers:
        counts = server == PROXY_SERVER
        for file, goal in ((small, LOCAL_VS_NGINX_SMALL), (large, LOCAL_VS_NGINX_LARGE)):
            value = ratio(("(b)", server), ("(a)", nginx), file)
            check(f"b/a req/s, {server}, {file}", value, value >= goal, f">= {goal}", counts=counts)
        for file in (small, large):
            value = ratio(("(c)", server), ("(d)", naive), file)
            goal_text = f">= {CACHED_VS_NAIVE:g}"
            passed = value >= CACHED_VS_NAIVE
            check(f"c/d req/s, {server}, {file}", value, passed, goal_text, counts=counts)
        for file in (small, large):
            p99 = by["(b)", server, file].p99_ms
            goal_text = f"< {P99_LIMIT_MS:g}"
            check(
                f"p99 of (b) ms, {server}, {file}",
                p99,
                p99 < P99_LIMIT_MS,
                goal_text,
                counts=counts,
            )
    print("\nRatios are medians of the rounds' own ratios; each round's, in order:")
    for line in spreads:
        print(f"  {line}")
    print(f"\n`scalemesh serve proxy` runs {PROXY_SERVER}; its rows decide PASS/FAIL.")
    errors = sum(row.errors for row in results)
    if errors:
        print(f"\nwarning: wrk counted {errors} errors or non-2xx answers (see the table)")
    return ok


# --- the run --------------------------------------------------------------------------------


def _servers(raw: str) -> list[str]:
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown server(s) {', '.join(unknown)}")
    # The chosen server first: the targets are checked on its rows.
    return [PROXY_SERVER, *(name for name in dict.fromkeys(names) if name != PROXY_SERVER)]


def _with_port(argv: list[str], port: int) -> list[str]:
    """`argv` with its `--port` value (0 in the plan) set to `port`."""
    if "--port" not in argv:
        return argv  # nginx: the port is in its config
    at = argv.index("--port") + 1
    return [*argv[:at], str(port), *argv[at + 1 :]]


def round_ratios(rounds: list[Result], top: str, bottom: str, file: str) -> list[float]:
    """`top`'s req/s over `bottom`'s for `file`, one ratio per round, in round order."""
    rate = {(row.server, row.file, row.round): row.requests_per_s for row in rounds}
    numbers = sorted({row.round for row in rounds})
    return [rate[top, file, number] / rate[bottom, file, number] for number in numbers]


def median_rounds(rounds: list[Result]) -> list[Result]:
    """Per server and file, the median req/s and the median p99 of its rounds, in plan order.

    Other work on the machine only ever slows a run down; the median of a few rounds, taken
    with the servers interleaved, keeps one unlucky run from deciding a comparison.
    """
    grouped: dict[tuple[str, str], list[Result]] = {}
    for row in rounds:
        grouped.setdefault((row.server, row.file), []).append(row)
    return [
        Result(
            server,
            file,
            statistics.median(row.requests_per_s for row in rows),
            statistics.median(row.p99_ms for row in rows),
            sum(row.errors for row in rows),
        )
        for (server, file), rows in grouped.items()
    ]


def proxy_argv(server: str, port: int) -> list[str]:
    """How to start the proxy under `server`: our own command for the one it uses."""
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
    if server == "uvicorn":
        options = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--lifespan", "on"]
        return [PYTHON, "-m", "uvicorn", "--factory", FACTORIES["proxy"], *where, *options, *quiet]
    options = ["--interface", "asgi", "--loop", "uvloop", "--no-ws"]
    return [PYTHON, "-m", "granian", "--factory", *options, *where, *quiet, FACTORIES["proxy"]]


def find_tools() -> tuple[str, str] | None:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    found = shutil.which("wrk")
    return (nginx, found) if nginx and found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="measure every server this many times, interleaved, and report the median "
        "(%(default)s)",
    )
    parser.add_argument(
        "--servers",
        type=_servers,
        default=_servers(",".join(SERVERS)),
        help=f"ASGI servers to run (b) and (c) under, comma-separated ({','.join(SERVERS)}); "
        f"`scalemesh serve proxy` uses {PROXY_SERVER}, which is always included",
    )
    args = parser.parse_args()
    tools = find_tools()
    if tools is None:
        print(
            f"bench/proxy.py needs nginx and wrk; install them with:\n  {INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2
    nginx = tools[0]
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ[name] = value
    os.environ.pop("AWS_PROFILE", None)

    files = make_files(args.seed)
    deployment_id = str(uuid.uuid4())
    with (
        tempfile.TemporaryDirectory(prefix="scalemesh-bench-") as tmp,
        processes(Path(tmp)) as running,
    ):
        work = Path(tmp)
        storage_dir = work / "storage"
        moto_port = free_port()
        endpoint = f"http://127.0.0.1:{moto_port}"
        moto = str(ROOT / ".venv" / "bin" / "moto_server")
        running.start("moto", [moto, "-H", "127.0.0.1", "-p", str(moto_port)])
        running.wait_http("moto", moto_port, "/moto-api/")
        s3_client(endpoint).create_bucket(Bucket=BUCKET)

        # One database for (b) and (c): the same deployment, shipped to both storages.
        local_env = proxy_env(work, f"file://{storage_dir}", None)
        s3_env = proxy_env(work, f"s3://{BUCKET}", endpoint)
        subprocess.run(  # noqa: S603 - our own CLI
            [PYTHON, "-m", "app.cli", "migrate"],
            env=local_env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=120,
        )
        local = Settings.from_env(local_env)
        on_s3 = Settings.from_env(s3_env)

        async def prepare() -> int:
            project_id = await seed(local, deployment_id)
            record = json.dumps(manifest(files, project_id, deployment_id)).encode()
            prefix = output_prefix(project_id, deployment_id)
            for settings in (local, on_s3):
                await ship(storage_from_settings(settings.storage), prefix, files, record)
            return project_id

        project_id = asyncio.run(prepare())
        prefix = output_prefix(project_id, deployment_id)
        site = storage_dir / prefix

        app_dir = work / "naive"
        app_dir.mkdir()
        (app_dir / "naive_passthrough.py").write_text(NAIVE_APP)
        naive_env = {**s3_env, "BENCH_BUCKET": BUCKET, "BENCH_PREFIX": prefix}
        nginx_port = free_port()
        config = nginx_config(work, site, nginx_port)
        error_log = str(work / "nginx-error.log")
        nginx_argv = [
            nginx,
            "-e",
            error_log,
            "-p",
            str(work),
            "-c",
            str(config),
            "-g",
            "daemon off;",
        ]
        naive_argv = [
            *[PYTHON, "-m", "uvicorn", "naive_passthrough:app", "--app-dir", str(app_dir)],
            *["--no-access-log", "--lifespan", "off", "--log-level", "warning"],
            *["--host", "127.0.0.1", "--port", "0"],
        ]
        plan: list[tuple[str, list[str], Mapping[str, str] | None, str]] = [
            ("(a) nginx, 1 worker", nginx_argv, None, "/"),
            *(
                (f"{name}, {server}", proxy_argv(server, 0), env, "/_scalemesh/health")
                for name, env in (("(b) local", local_env), ("(c) S3 moto", s3_env))
                for server in args.servers
            ),
            ("(d) naive boto3 pass-through", naive_argv, naive_env, "/"),
        ]
        # Every server runs for the whole benchmark (an idle one costs nothing), so a round
        # measures one file on each server back to back, seconds apart: the ratios compare
        # runs that met the same machine, which a busy neighbour would otherwise decide.
        ports: dict[str, int] = {}
        for name, argv, env, ready in plan:
            port = nginx_port if argv is nginx_argv else free_port()
            running.start(name, _with_port(argv, port), env)
            running.wait_http(name, port, ready)
            check_and_warm(name, port, files, args)
            ports[name] = port
        rounds: list[Result] = []
        for number in range(1, args.rounds + 1):
            print(f"round {number}/{args.rounds} (one server at a time, the others idle):")
            for path, body in files.items():
                for name, port in ports.items():
                    rounds.append(measure_once(name, port, path, body, number, args))

    return 0 if print_table(rounds, args) else 1


if __name__ == "__main__":
    raise SystemExit(main())
