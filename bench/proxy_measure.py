"""One measurement for `bench/proxy.py`: check and warm a server, then one `wrk` run, its result."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
    cpu_us: float = 0.0
    """CPU time the server's processes spent per answer, in µs: unlike req/s, barely moved by
    other work on the machine taking turns on its cores."""


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


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and its descendants (nginx's and the servers' workers)."""
    total, pending = 0.0, [pid]
    ticks = os.sysconf("SC_CLK_TCK")
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(n) for n in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


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
    pid: int | None = None,
) -> Result:
    before = tree_cpu_seconds(pid) if pid else 0.0
    rate, p99, errors = wrk(port, url_path(path), args.duration, args.connections, threads)
    cpu = tree_cpu_seconds(pid) - before if pid else 0.0
    # wrk's rate times its duration is near enough the answers given (warm-up excluded).
    cpu_us = cpu / max(rate * args.duration, 1) * 1e6
    load = os.getloadavg()[0]
    label = f"{path} ({len(body) // 1024} KB)"
    print(
        f"  -t{threads} {server:<28} {label:<32} {rate:9.0f} req/s  p99 {p99:7.2f} ms"
        f"  cpu {cpu_us:6.1f} us/req  load {load:5.2f}",
        flush=True,
    )
    return Result(server, label, rate, p99, errors, number, threads, load, cpu_us)


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
            cpu_us=statistics.median(row.cpu_us for row in rows),
        )
        for (server, file), rows in grouped.items()
    ]


def print_cpu(rounds: list[Result], ours: list[str], nginx: str) -> None:
    """nginx's CPU per answer over each of `ours`, per file: the median and each round's."""
    print(
        "\nCPU per answer, nginx's over ours (req/s on an idle machine would follow it; "
        "unlike req/s it hardly moves with other work on the machine), median of the rounds:"
    )
    cpu = {(row.server, row.file, row.round): row.cpu_us for row in rounds}
    numbers = sorted({row.round for row in rounds})
    for server in ours:
        for file in dict.fromkeys(row.file for row in rounds):
            ratios = [
                cpu[nginx, file, number] / cpu[server, file, number]
                for number in numbers
                if cpu.get((server, file, number)) and cpu.get((nginx, file, number))
            ]
            if ratios:
                shown = " ".join(f"{r:.2f}" for r in ratios)
                print(f"  a/b CPU, {server}, {file}: {statistics.median(ratios):.2f} ({shown})")
