"""Benchmark the GitHub webhook edge: time to acknowledge signed `push` deliveries.

    .venv/bin/python bench/webhooks.py [--deliveries 3000] [--concurrency 16]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

Starts `scalemesh serve api` (one uvicorn worker, as in production per replica) in its own
process, on SQLite and then on PostgreSQL (a throw-away database next to the one given; skipped
when it cannot be reached), with a GitHub App configured. The App is installed on the pushed
repository, so every delivery is verified, stored and then processed in the background (the
repository has no project, so processing ends at the installation check rather than starting
builds). Each delivery is the real `push` fixture with its own delivery id and commit,
HMAC-signed.

Two runs per database: deliveries arriving at `--rate` per second, each on its own request as
GitHub sends them, for p50/p99 time to acknowledge (delivery due → 202 received, so time a
delivery spent waiting to be sent counts too); then
`--concurrency` clients sending as fast as they can, for the sustained deliveries/s one process
acknowledges. Targets: p99 < 50 ms at 200/s, and ≥ 200 deliveries/s. Requests are signed
before the clock starts and sent by a small HTTP/1.1 client on keep-alive connections, so the
client's own cost stays out of the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "github"
SCALEMESH = ROOT / ".venv" / "bin" / "scalemesh"
SECRET = "bench-webhook-secret"  # noqa: S105 - signs the bench deliveries only
INSTALLATION = 957387
TARGET_P99_MS = 50.0
TARGET_RATE = 200.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def signed(event: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
        "Content-Type": "application/json",
    }


def push_body() -> bytes:
    """The push fixture, of a commit of its own: the same body twice would be a replay (a
    no-op), in this run or the next."""
    body = json.loads((FIXTURES / "push.commits.json").read_text())
    body["installation"]["id"] = INSTALLATION
    body["after"] = secrets.token_hex(20)
    return json.dumps(body).encode()


@contextmanager
def api_server(database_url: str, data_dir: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "SCALEMESH_DATA_DIR": str(data_dir),
        "SCALEMESH_DATABASE_URL": database_url,
        # Required on PostgreSQL (README "Production"); harmless on SQLite.
        "SCALEMESH_SECRET_KEY": "k1:" + "ab" * 32,
        "SCALEMESH_PREVIEW_KEY": "p1:" + "cd" * 32,
        "SCALEMESH_STORAGE_URL": f"file://{data_dir / 'storage'}",
        "SCALEMESH_GITHUB_APP_ID": "4242",
        "SCALEMESH_GITHUB_PRIVATE_KEY": private_key(),
        "SCALEMESH_GITHUB_WEBHOOK_SECRET": SECRET,
        # Nothing here should reach GitHub; if it tried, it would fail fast on a closed port.
        "SCALEMESH_GITHUB_API_URL": f"http://127.0.0.1:{free_port()}",
        "SCALEMESH_LOG_LEVEL": "WARNING",
    }
    subprocess.run(  # noqa: S603 - our own CLI
        [str(SCALEMESH), "migrate"], env=env, check=True, capture_output=True
    )
    log = (data_dir / "api.log").open("w")
    server = subprocess.Popen(  # noqa: S603 - our own CLI
        [str(SCALEMESH), "serve", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the API did not start")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            print((data_dir / "api.log").read_text()[-3000:])
            raise


async def install(url: str) -> None:
    body = json.loads((FIXTURES / "installation.created.json").read_text())
    body["installation"]["id"] = INSTALLATION
    raw = json.dumps(body).encode()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        answer = await client.post(
            "/github/webhooks", content=raw, headers=signed("installation", raw)
        )
    if answer.status_code != 202:
        raise SystemExit(f"installing failed: {answer.status_code} {answer.text}")


def requests(deliveries: int, host: str) -> list[bytes]:
    """Every delivery as the bytes GitHub would send, signed before the clock starts."""
    prepared = []
    for _ in range(deliveries):
        body = push_body()
        headers = {"Host": host, "Content-Length": str(len(body)), **signed("push", body)}
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        prepared.append(f"POST /github/webhooks HTTP/1.1\r\n{head}\r\n".encode() + body)
    return prepared


class Connections:
    """Keep-alive connections to the API, lent one request at a time.

    Written on asyncio streams rather than an HTTP client library: at a few hundred requests
    a second on two cores, httpx's own bookkeeping grew with every connection it held open
    and became the bottleneck, so its queueing was measured instead of the server's.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._all: list[asyncio.StreamWriter] = []

    async def post(self, request: bytes) -> int:
        """Send one prepared request and read its answer; the status code."""
        while self._idle:
            reader, writer = self._idle.pop()
            try:
                return await self._exchange(reader, writer, request)
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed it while it sat idle (its keep-alive timeout): as any
                # HTTP client does, try the next one.
                writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self._all.append(writer)
        return await self._exchange(reader, writer, request)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> int:
        writer.write(request)
        status_line = await reader.readuntil(b"\r\n")
        length = 0
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        self._idle.append((reader, writer))
        return int(status_line.split()[1])

    async def close(self) -> None:
        for writer in self._all:
            writer.close()


async def paced(url: str, deliveries: int, rate: float) -> tuple[list[float], float]:
    """GitHub's way: deliveries arrive on their own schedule (`rate` per second), each on its
    own request, whether or not the last was answered. Each latency is counted from the moment
    its delivery was due, so a stalled server cannot hide the deliveries it kept waiting.
    Latencies (s) and wall time."""
    prepared = requests(deliveries, urlsplit(url).netloc)
    latencies: list[float] = []
    connections = Connections(url)

    async def deliver(request: bytes, due: float) -> None:
        status = await connections.post(request)
        latencies.append(time.perf_counter() - due)
        if status != 202:
            raise SystemExit(f"unexpected answer {status}")

    try:
        started = time.perf_counter()
        pending = []
        for index, request in enumerate(prepared):
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(deliver(request, due)))
        await asyncio.gather(*pending)
        return latencies, time.perf_counter() - started
    finally:
        await connections.close()


async def flood(url: str, deliveries: int, concurrency: int) -> tuple[list[float], float]:
    """As fast as `concurrency` clients can send: the most deliveries/s one process acknowledges."""
    prepared = iter(requests(deliveries, urlsplit(url).netloc))
    latencies: list[float] = []
    connections = Connections(url)

    async def worker() -> None:
        for request in prepared:
            sent = time.perf_counter()
            status = await connections.post(request)
            latencies.append(time.perf_counter() - sent)
            if status != 202:
                raise SystemExit(f"unexpected answer {status}")

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started
    finally:
        await connections.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def throwaway_postgres(url: str) -> str | None:
    name = f"scalemesh_bench_{secrets.token_hex(4)}"
    try:
        connection = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def drop_postgres(admin_url: str, url: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        name = urlsplit(url).path.lstrip("/")
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=TARGET_RATE)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        engines = [("SQLite", f"sqlite:///{tmp}/sqlite/scalemesh.sqlite3", Path(tmp) / "sqlite")]
        postgres = asyncio.run(throwaway_postgres(args.postgres))
        if postgres is None:
            print(f"PostgreSQL at {args.postgres} is unreachable: measuring SQLite only")
        else:
            engines.append(("PostgreSQL", postgres, Path(tmp) / "postgres"))
        try:
            for name, database_url, data_dir in engines:
                data_dir.mkdir()
                with api_server(database_url, data_dir) as url:
                    asyncio.run(install(url))
                    asyncio.run(flood(url, 200, args.concurrency))  # warm up
                    latencies, _ = asyncio.run(paced(url, args.deliveries, args.rate))
                    _, wall = asyncio.run(flood(url, args.deliveries, args.concurrency))
                rows.append(
                    (
                        name,
                        statistics.median(latencies) * 1000,
                        percentile(latencies, 0.99) * 1000,
                        args.deliveries / wall,
                    )
                )
        finally:
            if postgres is not None:
                asyncio.run(drop_postgres(args.postgres, postgres))

    print(
        f"\n{args.deliveries} signed push deliveries per run, one API process (uvicorn, 1 worker)"
        f"\nack latency: deliveries arriving at {args.rate:.0f}/s; "
        f"deliveries/s: {args.concurrency} clients sending as fast as they can\n"
    )
    print(f"{'database':<12}{'p50 ack (ms)':>14}{'p99 ack (ms)':>14}{'deliveries/s':>14}")
    ok = True
    for name, p50, p99, rate in rows:
        print(f"{name:<12}{p50:>14.1f}{p99:>14.1f}{rate:>14.0f}")
        ok = ok and p99 < TARGET_P99_MS and rate >= TARGET_RATE
    print(
        f"\ntargets: p99 < {TARGET_P99_MS:.0f} ms, ≥ {TARGET_RATE:.0f} deliveries/s: "
        + ("met" if ok else "NOT met")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
