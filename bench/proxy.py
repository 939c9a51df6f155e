"""Benchmark the proxy against nginx on a directory and against a naive S3 pass-through.

    .venv/bin/python bench/proxy.py [--duration 10] [--connections 32] [--seed 1] [--rounds 5]
                                    [--servers uvicorn,granian] [--threads 1,2] [--baselines]
    .venv/bin/python bench/proxy.py --large [--large-mb 1024] [--large-s3-mb 128] [--clients 8]

Needs `nginx` and `wrk` (Debian: `apt-get install -y nginx wrk`). Seeds one deployment, as the
builder and the API would leave it (a user, a project, a ready deployment behind the alias
`web`, its files and manifest in storage), with a 2 KB `index.html` and a 150 KB compressible
`assets/app-<hash>.js`, then measures each file with `wrk -t1 -c32 -d10s --latency` and again
with `-t2` (`--threads`), one server at a time, all on 127.0.0.1:
  (a) nginx, one worker, serving the deployment's directory (`try_files`);
  (b) the proxy on local storage (`file://`);
  (c) the proxy on S3 (a moto server in its own process);
  (d) a naive ASGI app under uvicorn: one boto3 `get_object` per request, same moto and keys.
(b) and (c) run once per server in `--servers` (uvicorn, granian), one worker each like nginx;
the server `scalemesh serve proxy` uses (uvicorn, with the proxy's `ReplayingProtocol`) is
started through that command, granian directly with the same app factory. The targets are
checked on the rows of the server `scalemesh serve proxy` uses; the others are there to compare.
All servers start first and stay up (idle but for their own turn); each of `--rounds` rounds
measures a file on every server back to back, then the next file. The table shows each
server's median req/s and p99; a ratio is the median of the rounds' own ratios, each from
runs seconds apart, so a burst of other work on the machine does not decide a comparison.
Each round's ratios are printed too, to show the spread.
Requests carry `Host: web.localhost` and no Accept-Encoding, so identity bytes are compared.
Prints every run (with the load average), req/s and p99 per server and file, the ratios b/a
and c/d, and PASS/FAIL against the targets (>= 0.75 of nginx on 2 KB and >= 0.85 on 150 KB,
decided by the -t1 runs); exits 1 when a target fails, 2 when a tool is missing.

With `--baselines` two more servers run in every round, to show where the gap to nginx lies
(not targets; ratios per pair and file, in req/s and in CPU per answer):
  (e) nginx as (a) but with `sendfile off`: it then copies the body through user space, as
      (f) does, and the proxy for a body under 64 KiB (a larger one it sends by sendfile too);
  (f) a bare ASGI app under uvicorn, with the protocol `scalemesh serve proxy` uses, that
      sends (b)'s own answers (status, headers and bytes) from memory and does nothing else.
(f)/(a) is the most an answer that goes through ASGI reaches under our server; (b)/(f) shows
what replaying without ASGI gains; (b)/(e) compares the proxy with nginx when nginx copies.

With `--large` it measures memory instead (`proxy_large.py`): the proxy's RSS growth while 8
clients download a 1 GB file at once, on local storage and on S3 (moto); that needs only curl.

The helpers are beside it: `proxy_site.py` (the deployment), `proxy_large.py` (`--large`),
`proxy_processes.py` (starting and stopping), `proxy_servers.py` (each server's argv and config,
the naive and the bare app), `proxy_measure.py` (one wrk run), `proxy_table.py` (the table).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# After the path tweak that lets this run as a script.
from app.cli.serving import PROXY_SERVER  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.storage.choice import storage_from_settings  # noqa: E402
from app.storage.s3 import s3_client  # noqa: E402
from bench.proxy_large import run_large, ship_large  # noqa: E402
from bench.proxy_measure import Result, check_and_warm, measure_once  # noqa: E402
from bench.proxy_processes import free_port, processes  # noqa: E402
from bench.proxy_servers import (  # noqa: E402
    BARE_APP,
    NAIVE_APP,
    PYTHON,
    bare_argv,
    bare_env,
    nginx_argv,
    proxy_argv,
    proxy_env,
)
from bench.proxy_site import make_files, manifest, seed, ship  # noqa: E402
from bench.proxy_table import (  # noqa: E402
    BARE_APP_ROW,
    NGINX_COPYING,
    print_table,
    round_ratios,  # noqa: F401 - tests/test_bench_proxy.py reads the arithmetic from here
)
from builder.spec import output_prefix  # noqa: E402

BUCKET = "bench"
INSTALL_HINT = "apt-get install -y nginx wrk"
SERVERS = ("uvicorn", "granian")

# --- the run --------------------------------------------------------------------------------


def _servers(raw: str) -> list[str]:
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown server(s) {', '.join(unknown)}")
    # The chosen server first: the targets are checked on its rows.
    return [PROXY_SERVER, *(name for name in dict.fromkeys(names) if name != PROXY_SERVER)]


def _threads(raw: str) -> list[int]:
    try:
        counts = sorted({int(part) for part in raw.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not thread counts: {raw!r}") from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"not thread counts: {raw!r}")
    return counts


def _with_port(argv: list[str], port: int) -> list[str]:
    """`argv` with its `--port` value (0 in the plan) set to `port`."""
    if "--port" not in argv:
        return argv  # nginx: the port is in its config
    at = argv.index("--port") + 1
    return [*argv[:at], str(port), *argv[at + 1 :]]


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
    parser.add_argument(
        "--threads",
        type=_threads,
        default=[1, 2],
        help="wrk thread counts, comma-separated (1,2); the -t1 runs decide the targets: the "
        "load generator then leaves the server more of the CPU",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="instead: the proxy's RSS growth while --clients download one large file at once",
    )
    parser.add_argument("--large-mb", type=int, default=1024, help="on local storage (%(default)s)")
    parser.add_argument(
        "--large-s3-mb",
        type=int,
        default=128,
        help="on moto, which copies the whole object for every ranged GET (%(default)s)",
    )
    parser.add_argument("--clients", type=int, default=8, help="with --large (%(default)s)")
    parser.add_argument(
        "--baselines",
        action="store_true",
        help=f"also measure ({NGINX_COPYING}) and ({BARE_APP_ROW}), to show how much of "
        "the gap to nginx is the server's and how much is sendfile's",
    )
    args = parser.parse_args()
    tools = ("", "") if args.large else find_tools()
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
        if args.large:
            sizes = ship_large(storage_dir, prefix, BUCKET, endpoint, args)
            return 0 if run_large(running, {"local": local_env, "s3": s3_env}, sizes, args) else 1

        app_dir = work / "apps"
        app_dir.mkdir()
        (app_dir / "naive_passthrough.py").write_text(NAIVE_APP)
        naive_env = {**s3_env, "BENCH_BUCKET": BUCKET, "BENCH_PREFIX": prefix}
        naive_argv = [
            *[PYTHON, "-m", "uvicorn", "naive_passthrough:app", "--app-dir", str(app_dir)],
            *["--no-access-log", "--lifespan", "off", "--log-level", "warning"],
            *["--host", "127.0.0.1", "--port", "0"],
        ]
        # nginx's port is in its config; the others take theirs when they start.
        nginx_port, copying_port = free_port(), free_port()
        ours = f"(b) local, {PROXY_SERVER}"
        plan: list[tuple[str, list[str], Mapping[str, str] | None, str, int]] = [
            (
                "(a) nginx, 1 worker",
                nginx_argv(nginx, work, site, nginx_port),
                None,
                "/",
                nginx_port,
            ),
            *(
                (f"{name}, {server}", proxy_argv(server, 0), env, "/_scalemesh/health", 0)
                for name, env in (("(b) local", local_env), ("(c) S3 moto", s3_env))
                for server in args.servers
            ),
            ("(d) naive boto3 pass-through", naive_argv, naive_env, "/", 0),
        ]
        if args.baselines:
            (app_dir / "bare_asgi.py").write_text(BARE_APP)
            copying = nginx_argv(nginx, work / "copying", site, copying_port, sendfile=False)
            plan.append((NGINX_COPYING, copying, None, "/", copying_port))
            plan.append((BARE_APP_ROW, bare_argv(app_dir), None, "/", 0))
        # Every server runs for the whole benchmark (an idle one costs nothing), so a round
        # measures one file on each server back to back, seconds apart: the ratios compare
        # runs that met the same machine, which a busy neighbour would otherwise decide.
        ports: dict[str, int] = {}
        for name, argv, env, ready, fixed in plan:
            port = fixed or free_port()
            if name == BARE_APP_ROW:
                # The very answers (b) gives, so only the app differs.
                env = bare_env(ports[ours], site, files)
            running.start(name, _with_port(argv, port), env)
            running.wait_http(name, port, ready)
            check_and_warm(name, port, files, args)
            ports[name] = port
        rounds: list[Result] = []
        for number in range(1, args.rounds + 1):
            load = os.getloadavg()
            print(
                f"round {number}/{args.rounds} (one server at a time, the others idle), "
                f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}:"
            )
            for threads in args.threads:
                for path, body in files.items():
                    for name, port in ports.items():
                        pid = dict(running.running)[name].pid
                        result = measure_once(name, port, path, body, number, args, threads, pid)
                        rounds.append(result)

    ok = True
    for threads in args.threads:
        runs = [row for row in rounds if row.threads == threads]
        decides = threads == 1 or 1 not in args.threads
        ok = print_table(runs, args, threads, decides=decides) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
