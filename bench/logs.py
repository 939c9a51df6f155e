"""Benchmark live build logs: a builder-side writer, the log websocket, a client reading it.

    .venv/bin/python bench/logs.py [--lines N] [--rate N] [--redis-url URL] [--sink-flush-ms MS]

Runs the API under uvicorn on 127.0.0.1 in this process (SQLite in a temporary directory, one
user, project and deployment per run seeded straight into the tables), and for each log bus:
  memory  the writer is a coroutine on the server's own event loop appending to the app's bus,
          as the local runner does with a builder's stdout;
  redis   the writer is the builder's own log sink (`builder.remote.HttpSink`, with a bootstrap
          token) in another process; the API appends to Redis. Used when `--redis-url`,
          `SCALEMESH_BENCH_REDIS_URL` or redis://127.0.0.1:6379/0 answers.
Each bus runs three times: `paced` (the writer emits `--rate` lines/s while a client follows),
`burst` (the writer goes as fast as it can while a client follows) and `replay` (the whole log
is written first, then a client joins late: the websocket's own speed, whatever the writer's).
The client runs in its own process and reads from before the first line to the result event;
every line carries its emit time in `ts`, so the client measures line → client latency (with
Redis, the sink's batching too: `--sink-flush-ms`, by default the builder's 50 ms). Prints
p50/p99 latency, lines/s written and received, lines lost, events per frame, and PASS/FAIL
against the targets (p99 < 100 ms paced; >= 20,000 lines/s for one deployment; nothing lost,
duplicated or reordered); exits 1 when a target fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402 - after the path tweak that lets this run as a script
import uvicorn  # noqa: E402
import websockets  # noqa: E402

if TYPE_CHECKING:
    from litestar import Litestar

    from app.logs.bus import LogBus
    from app.settings import Settings

PYTHON = sys.executable
SECRET_KEY = "bench-secret-key-" + "x" * 32
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
FILLER = "compiling src/components/Widget.tsx ... done"
TICK_S = 0.001
BURST_YIELD_EVERY = 100
START_TIMEOUT_S = 30
RUN_TIMEOUT_S = 300

P99_LIMIT_MS = 100.0
MIN_LINES_PER_S = 20_000


def line(n: int) -> dict[str, Any]:
    return {"type": "line", "ts": time.time(), "stream": "stdout", "text": f"{n:06} {FILLER}"}


def due(n: int, rate: float, started: float) -> int:
    """How many lines a writer at `rate` lines/s (0: no limit) should have emitted by now."""
    if rate <= 0:
        return n
    return min(n, int((time.perf_counter() - started) * rate) + 1)


# --- the writers ------------------------------------------------------------------------------


async def write_memory(bus: LogBus, deployment_id: str, n: int, rate: float) -> float:
    """On the server's loop, as the local runner feeds the bus from a builder's stdout.

    Returns the seconds it took."""
    started, sent = time.perf_counter(), 0
    while sent < n:
        target = min(due(n, rate, started), sent + BURST_YIELD_EVERY)
        while sent < target:
            await bus.append(deployment_id, line(sent))
            sent += 1
        # Paced: wait for the next tick. Burst: still let the loop serve the websocket.
        await asyncio.sleep(TICK_S if rate > 0 else 0)
    return time.perf_counter() - started


def write_http(api_url: str, token: str, n: int, rate: float, flush_s: float) -> float:
    """In its own process, with the builder's own sink, as an ECS build would.

    Returns the seconds it took, until the API had taken the last line."""
    from builder.remote import HttpSink
    from builder.spec import Masker

    masker = Masker([])
    sink = (
        HttpSink(api_url, token, masker, flush_interval=flush_s)
        if flush_s > 0
        else HttpSink(api_url, token, masker)  # the builder's own settings
    )
    started, sent = time.perf_counter(), 0
    while sent < n:
        target = due(n, rate, started)
        while sent < target:
            sink.emit(line(sent))
            sent += 1
        if rate > 0:
            time.sleep(TICK_S)
    sink.close()
    return time.perf_counter() - started


# --- the client -------------------------------------------------------------------------------


async def follow(url: str, token: str) -> dict[str, Any]:
    """Read the log to its close; latency of each line, seqs seen, frames, close code."""
    latencies: list[float] = []
    seqs: list[int] = []
    frames = 0
    first_ts = last_at = 0.0
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None
    ) as ws:
        connected_at = time.time()
        print("ready", flush=True)
        try:
            async for message in ws:
                now = time.time()
                frames += 1
                for event in json.loads(message):
                    if event.get("type") != "line":
                        continue
                    if not seqs:
                        first_ts = event["ts"]
                    latencies.append(now - event["ts"])
                    seqs.append(event["seq"])
                    last_at = now
        except websockets.ConnectionClosedError:
            pass  # reported through the close code
    return {
        "latencies": latencies,
        "seqs": seqs,
        "frames": frames,
        "first_ts": first_ts,
        "connected_at": connected_at,
        "last_at": last_at,
        "close_code": ws.close_code,
    }


def summarise(raw: dict[str, Any], expected: int, *, replay: bool) -> dict[str, Any]:
    latencies: list[float] = sorted(raw["latencies"])
    seqs: list[int] = raw["seqs"]
    got = len(set(seqs))
    # Live: from the first line's emit to the last line's arrival; replay: from connecting.
    span = raw["last_at"] - (raw["connected_at"] if replay else raw["first_ts"])

    def percentile(p: float) -> float:
        if not latencies or replay:  # the lines were old before the client came
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "lines": len(seqs),
        "lost": expected - got,
        "duplicates": len(seqs) - got,
        "in_order": seqs == sorted(seqs),
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "max_ms": latencies[-1] * 1000 if latencies and not replay else float("nan"),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "lines_per_s": len(seqs) / span if span > 0 else float("nan"),
        "per_frame": len(seqs) / raw["frames"] if raw["frames"] else 0.0,
        "close_code": raw["close_code"],
    }


# --- one bus, two runs ------------------------------------------------------------------------


async def seed(settings: Settings) -> tuple[int, str]:
    """A user with a session and a project; returns the project id and the bearer token."""
    from app.tables import Project, User
    from app.users.service import UserService

    user = await User.insert(User(email="bench@example.com", password_hash="x"))  # noqa: S106
    user_id = int(user[0]["id"])
    project = await Project.insert(
        Project(slug="web", name="web", owner=user_id, git_url="https://x/y.git")
    )
    token, _ = await UserService(settings).start_session(user_id)
    return int(project[0]["id"]), token


async def run_one(
    app: Litestar,
    port: int,
    project_id: int,
    token: str,
    n: int,
    write: Callable[[str], Awaitable[float]],
    *,
    replay: bool = False,
) -> dict[str, Any]:
    """One deployment's log, written while a client follows it (or, `replay`, before)."""
    from app.tables import Deployment

    deployment_id = str(uuid.uuid4())
    await Deployment.insert(
        Deployment(id=deployment_id, project=project_id, sha="b" * 40, state="building")
    )
    url = f"ws://127.0.0.1:{port}/deployments/{deployment_id}/logs/ws"
    bus: LogBus = app.state.services.bus
    # The app, not the builder, writes the result: as the reconcile loop does.
    result = {"type": "result", "ts": time.time(), "state": "ready"}
    if replay:
        writing_s = await asyncio.wait_for(write(deployment_id), RUN_TIMEOUT_S)
        await bus.append(deployment_id, result)
    client = await asyncio.create_subprocess_exec(
        PYTHON, __file__, "--client", url, token, stdout=asyncio.subprocess.PIPE
    )
    assert client.stdout is not None  # noqa: S101 - asked for above
    try:
        ready = await asyncio.wait_for(client.stdout.readline(), START_TIMEOUT_S)
        if ready.strip() != b"ready":
            raise RuntimeError(f"the client did not connect: {ready!r}")
        if not replay:
            writing_s = await asyncio.wait_for(write(deployment_id), RUN_TIMEOUT_S)
            await bus.append(deployment_id, {**result, "ts": time.time()})
        out = await asyncio.wait_for(client.stdout.read(), RUN_TIMEOUT_S)
        await client.wait()
    finally:
        if client.returncode is None:
            client.kill()
            await client.wait()
        await bus.forget(deployment_id)
    return {**summarise(json.loads(out), n, replay=replay), "written_per_s": n / writing_s}


async def bench_bus(
    work: Path, name: str, redis_url: str | None, n: int, rate: float, sink_flush_s: float
) -> list[tuple[str, str, dict[str, Any]]]:
    # Imported here: the client and writer processes need none of the app.
    from app import database
    from app.asgi import create_app
    from app.builds.tokens import BuildTokens
    from app.settings import Settings

    environ = {
        "SCALEMESH_DATA_DIR": str(work / name / "data"),
        "SCALEMESH_SECRET_KEY": SECRET_KEY,
        "SCALEMESH_STORAGE_URL": f"file://{work / name / 'storage'}",
        "SCALEMESH_DATABASE_URL": f"sqlite:///{work / name / 'scalemesh.sqlite3'}",
    }
    if redis_url:
        environ["SCALEMESH_REDIS_URL"] = redis_url
    (work / name).mkdir()
    settings = Settings.from_env(environ)
    await database.migrate(database.make_engine(settings.database))
    app = create_app(settings, reconcile=False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="on")
    )
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if serving.done() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            await asyncio.sleep(0.01)
        project_id, token = await seed(settings)
        results = []
        for mode, mode_rate in (("paced", rate), ("burst", 0.0), ("replay", 0.0)):

            async def write(deployment_id: str, mode_rate: float = mode_rate) -> float:
                if redis_url is None:
                    return await write_memory(app.state.services.bus, deployment_id, n, mode_rate)
                build_token = await BuildTokens().issue(deployment_id, timedelta(hours=1))
                writer = await asyncio.create_subprocess_exec(
                    *(PYTHON, __file__, "--writer", f"http://127.0.0.1:{port}", build_token),
                    str(n),
                    *(str(mode_rate), str(sink_flush_s)),
                    stdout=asyncio.subprocess.PIPE,
                )
                out, _ = await writer.communicate()
                if writer.returncode != 0:
                    raise RuntimeError("the HTTP writer failed")
                return float(out)

            label = f"{mode} {rate:,.0f}/s" if mode_rate else mode
            replay = mode == "replay"
            print(f"  {name:<6} {label:<16} ...", file=sys.stderr, flush=True)
            results.append(
                (name, label, await run_one(app, port, project_id, token, n, write, replay=replay))
            )
        return results
    finally:
        server.should_exit = True
        await serving
        listener.close()


def redis_reachable(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


# --- main -------------------------------------------------------------------------------------


def report(results: list[tuple[str, str, dict[str, Any]]]) -> bool:
    header = (
        f"{'bus':<7}{'writer':<17}{'lines':>8}{'lost':>6}{'dup':>5}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'written/s':>11}{'lines/s':>10}{'per frame':>11}{'close':>7}  verdict"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for bus, writer, r in results:
        good = r["lost"] == 0 and r["duplicates"] == 0 and r["in_order"] and r["close_code"] == 1000
        if writer.startswith("paced"):
            good = good and r["p99_ms"] < P99_LIMIT_MS
        ok = ok and good
        print(
            f"{bus:<7}{writer:<17}{r['lines']:>8}{r['lost']:>6}{r['duplicates']:>5}"
            f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}"
            f"{r['written_per_s']:>11,.0f}{r['lines_per_s']:>10,.0f}"
            f"{r['per_frame']:>11.1f}{r['close_code']!s:>7}  {'PASS' if good else 'FAIL'}"
        )
    for bus in dict.fromkeys(b for b, _, _ in results):
        fastest, run = max((r["lines_per_s"], w) for b, w, r in results if b == bus)
        enough = fastest >= MIN_LINES_PER_S
        ok = ok and enough
        print(
            f"{bus}: best {fastest:,.0f} lines/s for one deployment ({run}) "
            f"(target >= {MIN_LINES_PER_S:,}): {'PASS' if enough else 'FAIL'}"
        )
    print(f"targets: p99 < {P99_LIMIT_MS:.0f} ms when paced; no line lost, duplicated or reordered")
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=20_000, help="lines/s of the paced run")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--client", nargs=2, metavar=("URL", "TOKEN"), help=argparse.SUPPRESS)
    flush = "the builder's log sink's flush interval (default: its own, 50 ms)"
    parser.add_argument("--sink-flush-ms", type=float, default=0, help=flush)
    parser.add_argument("--writer", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.client:
        print(json.dumps(asyncio.run(follow(*args.client))))
        return 0
    if args.writer:
        api_url, build_token, n, rate, flush_s = args.writer
        print(write_http(api_url, build_token, int(n), float(rate), float(flush_s)))
        return 0

    redis_url = args.redis_url or os.environ.get("SCALEMESH_BENCH_REDIS_URL") or DEFAULT_REDIS_URL
    buses: list[tuple[str, str | None]] = [("memory", None)]
    if redis_reachable(redis_url):
        buses.append(("redis", redis_url))
    else:
        print(f"Redis at {redis_url} does not answer: memory bus only", file=sys.stderr)
    print(f"{args.lines:,} lines per run; machine: {os.cpu_count()} CPUs", file=sys.stderr)
    results = []
    # The event loop `scalemesh serve` would run (uvloop when installed).
    loop_factory = uvicorn.Config("app.asgi:create_app_from_env").get_loop_factory()
    with tempfile.TemporaryDirectory(prefix="scalemesh-bench-logs-") as tmp:
        for name, url in buses:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                results += runner.run(
                    bench_bus(
                        Path(tmp), name, url, args.lines, args.rate, args.sink_flush_ms / 1000
                    )
                )
    return 0 if report(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
