"""`bench/proxy.py --large`: the proxy's memory while it serves one large file to many clients.

Seeds a deployment with a large file (`--large-mb`, 1 GB by default; on the moto S3 server
`--large-s3-mb`, smaller, because moto copies the whole object for every ranged GET), starts
`scalemesh serve proxy` (one worker) on local storage and then on S3, and has
`--clients` curl processes download the file at once. The proxy's RSS (its main process and
workers together) is sampled every 20 ms; the growth over the idle, warmed-up proxy is what
counts: below `RSS_GROWTH_LIMIT_MB`, whatever the file's size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

import boto3

from app.cli.serving import PROXY_SERVER
from app.storage.s3 import s3_client
from bench.proxy_processes import Processes, fetch, free_port
from bench.proxy_servers import proxy_argv
from bench.proxy_site import HOST
from builder.spec import MANIFEST

LARGE = "large.bin"
RSS_GROWTH_LIMIT_MB = 64.0
SAMPLE_S = 0.02
MIB = 1024 * 1024


def write_large(path: Path, size_mb: int, seed: int) -> str:
    """A file of `size_mb` MiB of incompressible bytes, written a MiB at a time; its sha256."""
    rng = random.Random(seed)  # noqa: S311 - test data, reproducible by seed
    blocks = [rng.randbytes(MIB) for _ in range(16)]
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as sink:
        for number in range(size_mb):
            block = blocks[number % len(blocks)]
            digest.update(block)
            sink.write(block)
    return digest.hexdigest()


def large_manifest(manifest: dict[str, object], size: int, sha256: str) -> bytes:
    files = dict(manifest["files"])  # type: ignore[call-overload]
    files[LARGE] = {
        "size": size,
        "sha256": sha256,
        "content_type": "application/octet-stream",
        "cache_control": "public, max-age=0, must-revalidate",
        "encodings": [],
    }
    return json.dumps({**manifest, "files": files}).encode()


def ship_large(
    storage_dir: Path, prefix: str, bucket: str, endpoint: str, args: argparse.Namespace
) -> dict[str, int]:
    """Put the large file in both storages, next to the deployment `bench/proxy.py` seeded."""
    local = storage_dir / prefix / LARGE
    sha_local = write_large(local, args.large_mb, args.seed)
    manifest = json.loads((storage_dir / prefix / MANIFEST).read_text())
    (storage_dir / prefix / MANIFEST).write_bytes(
        large_manifest(manifest, args.large_mb * MIB, sha_local)
    )
    s3_source = storage_dir.parent / "s3-large.bin"
    sha_s3 = write_large(s3_source, args.large_s3_mb, args.seed)
    client = s3_client(endpoint)
    # upload_file goes in parts: the bench never holds the object in memory either.
    boto3.s3.transfer.S3Transfer(client).upload_file(str(s3_source), bucket, prefix + LARGE)
    s3_source.unlink()
    client.put_object(
        Bucket=bucket,
        Key=prefix + MANIFEST,
        Body=large_manifest(manifest, args.large_s3_mb * MIB, sha_s3),
    )
    return {"local": args.large_mb * MIB, "s3": args.large_s3_mb * MIB}


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants (a server's workers are children)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(n) for n in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def download_all(port: int, size: int, clients: int, ranged: bool) -> tuple[float, list[str]]:
    """`clients` curls fetching the large file at once; seconds taken and any failures.

    `ranged` asks each for all but the first byte: a range is streamed a piece at a time,
    where a whole local file would go to a server with ASGI pathsend by its path.
    """
    curl = shutil.which("curl") or "curl"
    argv = [
        *[curl, "-s", "-o", os.devnull, "-w", "%{http_code} %{size_download}"],
        *["-H", f"Host: {HOST}", f"http://127.0.0.1:{port}/{LARGE}"],
        *(["-H", "Range: bytes=1-"] if ranged else []),
    ]
    expected = f"206 {size - 1}" if ranged else f"200 {size}"
    started = time.monotonic()
    running = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)  # noqa: S603 - fixed argv
        for _ in range(clients)
    ]
    failures = []
    for process in running:
        out, _ = process.communicate(timeout=900)
        if out.strip() != expected:
            failures.append(out.strip())
    return time.monotonic() - started, failures


def measure(
    name: str, running: Processes, env: dict[str, str], size: int, args: argparse.Namespace
) -> bool:
    """Start the proxy on `env`'s storage, download the file `args.clients` times at once."""
    ranged = name.endswith("ranges")
    port = free_port()
    log_name = name.replace(" ", "-").replace("(", "").replace(")", "").replace(",", "")
    running.start(log_name, proxy_argv(PROXY_SERVER, port), env)
    running.wait_http(log_name, port, "/_scalemesh/health")
    process = dict(running.running)[log_name]
    for _ in range(20):  # warm: the site's manifest and rules read, the code paths run once
        fetch(port, "/")
    status, _, _ = fetch(port, f"/{LARGE}?warm", timeout=120)
    if status != 200:
        raise RuntimeError(f"{name} answered {status} for /{LARGE}")
    time.sleep(0.5)
    baseline = tree_rss(process.pid)
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(process.pid))
            time.sleep(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    load_before = os.getloadavg()[0]
    seconds, failures = download_all(port, size, args.clients, ranged)
    done.set()
    sampler.join()
    growth = (peak - baseline) / MIB
    served = size * args.clients / MIB
    ok = growth < RSS_GROWTH_LIMIT_MB and not failures
    print(
        f"| {name:<22} | {size / MIB:7.0f} | {args.clients:7d} | {baseline / MIB:8.1f} "
        f"| {peak / MIB:8.1f} | {growth:8.1f} | {served / seconds:9.0f} "
        f"| {load_before:4.2f}/{os.getloadavg()[0]:4.2f} | {'PASS' if ok else 'FAIL':<4} |",
        flush=True,
    )
    for failure in failures:
        print(f"  a client got {failure!r}, not 200 and {size} bytes")
    return ok


def run_large(
    running: Processes,
    envs: dict[str, dict[str, str]],
    sizes: dict[str, int],
    args: argparse.Namespace,
) -> bool:
    print(
        f"\n{args.clients} clients download one file at once from `scalemesh serve proxy` "
        f"({PROXY_SERVER}, 1 worker); RSS of its processes sampled every {SAMPLE_S * 1000:g} ms, "
        f"growth over the warmed-up idle proxy (goal < {RSS_GROWTH_LIMIT_MB:g} MB)\n"
    )
    print(
        "| storage                | size MB | clients | idle MB  | peak MB  | growth   "
        "| MB/s out  | load 1m   | goal |"
    )
    print("|:--|--:|--:|--:|--:|--:|--:|--:|:--|")
    ok = True
    for kind, name in (
        ("local", "local storage"),
        ("local", "local storage, ranges"),
        ("s3", "S3 (moto server)"),
        ("s3", "S3 (moto), ranges"),
    ):
        ok = measure(name, running, envs[kind], sizes[kind], args) and ok
    return ok
