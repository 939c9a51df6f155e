"""One measurement for `bench/proxy.py`: check and warm a server, then one `wrk` run, its result."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from bench.proxy_processes import fetch
from bench.proxy_site import HOST, INDEX

WARM_REQUESTS = 20
WARM_SECONDS = 2


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
    threads: int = 2
    """wrk's `-t`: with 1, the load generator leaves more of the CPU to the server."""
    load: float = 0.0
    """The machine's 1-minute load average when the run ended (other work skews a run)."""


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk(
    port: int, path: str, seconds: int, connections: int, threads: int = 2
) -> tuple[float, float, int]:
    """req/s, p99 in ms and error count of one wrk run."""
    argv = [
        shutil.which("wrk") or "wrk",
        f"-t{threads}",
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
    server: str,
    port: int,
    path: str,
    body: bytes,
    number: int,
    args: argparse.Namespace,
    threads: int = 2,
) -> Result:
    rate, p99, errors = wrk(port, url_path(path), args.duration, args.connections, threads)
    load = os.getloadavg()[0]
    label = f"{path} ({len(body) // 1024} KB)"
    print(
        f"  -t{threads} {server:<28} {label:<32} {rate:9.0f} req/s  p99 {p99:7.2f} ms"
        f"  load {load:5.2f}",
        flush=True,
    )
    return Result(server, label, rate, p99, errors, number, threads, load)
