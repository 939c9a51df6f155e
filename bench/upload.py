"""Benchmark the builder's uploader against naive uploads, to S3 (moto) and to a directory.

    .venv/bin/python bench/upload.py [--files 2000] [--megabytes 50] [--seed 1]

Makes a synthetic build output (compressible text and random binary of mixed sizes), then
times, in one run:
  (a) S3: a sequential `put_object` loop vs our uploader, against a moto server running in a
      separate process (so it does not share our GIL);
  (b) local storage: `cp -r` vs our uploader.
Our uploader is timed with and without compression, since brotli at quality 11 costs CPU
time that neither baseline spends; "compress only" times hashing and compressing alone.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from builder import content  # noqa: E402 - after the path tweak that lets this run as a script
from builder.spec import BuildLimits  # noqa: E402 - after the path tweak
from builder.staging import stage  # noqa: E402 - after the path tweak
from builder.upload import (  # noqa: E402
    Headers,
    LocalStorage,
    Pending,
    S3Storage,
    Storage,
    upload_output,
    write_manifest,
)

BUCKET = "bench"
PREFIX = "__outputs/1/bench/"
TEXT_KINDS = (".js", ".css", ".html", ".json", ".svg")
BINARY_KINDS = (".png", ".webp", ".woff2", ".jpg")


# --- the synthetic site ---------------------------------------------------------------------


def make_site(root: Path, files: int, megabytes: float, seed: int) -> int:
    """Write `files` files totalling about `megabytes` MB under `root`; return the byte count."""
    rng = random.Random(seed)  # noqa: S311 - test data, reproducible by seed
    words = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz_", k=rng.randint(2, 10)))
        for _ in range(3000)
    ]
    punctuation = ["(", ")", "{", "}", ";", "=>", ".", ",", "=", "\n", "  "]
    corpus = " ".join(
        rng.choice(words) if rng.random() < 0.8 else rng.choice(punctuation) for _ in range(600_000)
    ).encode()
    # Many small files, some medium, a few large (log-uniform within each tier), scaled to the
    # target total: roughly a real bundle plus its pages and images.
    tiers = [(0.75, 2.7, 4.3), (0.2, 4.3, 5.3), (0.05, 5.3, 6.3)]
    raw = []
    for _ in range(files):
        _, low, high = rng.choices(tiers, weights=[tier[0] for tier in tiers])[0]
        raw.append(10 ** rng.uniform(low, high))
    scale = megabytes * 1_000_000 / sum(raw)
    total = 0
    for index, size in enumerate(raw):
        size = max(64, int(size * scale))
        text = rng.random() < 0.6
        suffix = rng.choice(TEXT_KINDS if text else BINARY_KINDS)
        hashed = rng.random() < 0.7
        directory = "assets" if hashed else f"pages/{index % 40}"
        name = f"{directory}/file{index}-{rng.getrandbits(32):08x}{suffix}"
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if text:
            start = rng.randrange(0, max(1, len(corpus) - size))
            data = (corpus[start : start + size] * (size // max(1, len(corpus)) + 1))[:size]
        else:
            data = rng.randbytes(size)
        path.write_bytes(data)
        total += len(data)
    return total


# --- the moto server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(  # noqa: S603 - our own venv's moto_server
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        give_up = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()  # noqa: S310 - our loopback server
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > give_up:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def reset(endpoint: str) -> None:
    """Empty moto's memory between runs, so each run starts from the same state."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
    urllib.request.urlopen(request, timeout=30).close()  # noqa: S310 - our loopback server


def s3_client(endpoint: str) -> Any:
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")


# --- the contenders -------------------------------------------------------------------------


def ours(out: Path, make_storage: Callable[[], Storage], *, compress: bool) -> tuple[float, int]:
    """Our uploader, end to end (stage, hash, compress, upload, manifest): seconds, objects."""
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        storage = make_storage()
        files = stage(out.parent, out.name, Path(scratch) / "staging", BuildLimits(), print)
        uploaded = upload_output(files, storage, PREFIX, Path(scratch), compress=compress)
        manifest = {"files": {path: record.to_json() for path, record in uploaded.files.items()}}
        write_manifest(storage, PREFIX + "manifest.json", manifest, Path(scratch))
        storage.close()
        return time.perf_counter() - started, len(uploaded.files) + uploaded.siblings + 1


class NullStorage:
    def put(self, key: str, source: Path, headers: Headers) -> Pending:
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def close(self, *, cancel: bool = False) -> None:
        pass


def sequential_put(out: Path, endpoint: str) -> float:
    """What a first version would do: one `put_object` per file, one after another."""
    client = s3_client(endpoint)
    started = time.perf_counter()
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        key = PREFIX + path.relative_to(out).as_posix()
        client.put_object(
            Bucket=BUCKET,
            Key=key,
            Body=path.read_bytes(),
            ContentType=content.content_type(key),
            CacheControl=content.cache_control(key),
        )
    return time.perf_counter() - started


def cp_r(out: Path, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["cp", "-r", str(out), str(target)], check=True)  # noqa: S603, S607 - fixed argv
    return time.perf_counter() - started


# --- the table ------------------------------------------------------------------------------


@dataclass
class Row:
    target: str
    name: str
    seconds: float
    objects: int
    """Files written: the originals, plus compressed siblings and the manifest for ours."""
    baseline: float | None
    """The time of the row this one is compared with; None: not comparable."""


def print_table(rows: list[Row], files: int, total: int) -> None:
    print(f"\n{files} files, {total / 1e6:.1f} MB, {os.cpu_count()} CPUs\n")
    columns = (
        f"| {'target':<22} | {'uploader':<27} | {'s':>6} | {'files/s':>7} | {'MB/s':>6} "
        f"| {'objects':>7} | {'speed-up':>8} |"
    )
    print(columns)
    print("|" + "|".join(":" + "-" * (len(cell) - 1) for cell in columns.split("|")[1:-1]) + "|")
    for row in rows:
        ratio = f"{row.baseline / row.seconds:7.2f}x" if row.baseline else f"{'-':>8}"
        print(
            f"| {row.target:<22} | {row.name:<27} | {row.seconds:6.2f} "
            f"| {files / row.seconds:7.0f} | {total / 1e6 / row.seconds:6.1f} "
            f"| {row.objects:7d} | {ratio} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--megabytes", type=float, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)

    with tempfile.TemporaryDirectory(prefix="scalemesh-bench-") as tmp:
        work = Path(tmp)
        out = work / "out"
        total = make_site(out, args.files, args.megabytes, args.seed)
        files = args.files
        rows: list[Row] = []

        s3 = "S3 (moto, own process)"
        with moto_server() as endpoint:

            def fresh_bucket() -> None:
                reset(endpoint)
                s3_client(endpoint).create_bucket(Bucket=BUCKET)

            def s3_storage() -> S3Storage:
                return S3Storage(BUCKET, endpoint_url=endpoint)

            fresh_bucket()
            baseline = sequential_put(out, endpoint)
            rows.append(Row(s3, "sequential put_object", baseline, files, baseline))
            fresh_bucket()
            rows.append(
                Row(s3, "ours, compression off", *ours(out, s3_storage, compress=False), baseline)
            )
            fresh_bucket()
            rows.append(
                Row(
                    s3, "ours (+ .br/.gz siblings)", *ours(out, s3_storage, compress=True), baseline
                )
            )

        local = "local directory"
        baseline = cp_r(out, work / "cp")
        rows.append(Row(local, "cp -r", baseline, files, baseline))
        plain = ours(out, lambda: LocalStorage(work / "plain"), compress=False)
        rows.append(Row(local, "ours, compression off", *plain, baseline))
        full = ours(out, lambda: LocalStorage(work / "full"), compress=True)
        rows.append(Row(local, "ours (+ .br/.gz siblings)", *full, baseline))
        alone = ours(out, NullStorage, compress=True)
        rows.append(Row("nowhere (null storage)", "ours: hash + compress only", *alone, None))

    print_table(rows, files, total)


if __name__ == "__main__":
    main()
