"""The table `bench/proxy.py` prints: medians, ratios of runs from one round, targets, verdicts."""

from __future__ import annotations

import argparse
import os
import statistics

from app.cli.serving import PROXY_SERVER
from bench.proxy_measure import Result, median_rounds, print_cpu

# Targets from the issue.
LOCAL_VS_NGINX_SMALL = 0.75
LOCAL_VS_NGINX_LARGE = 0.85
CACHED_VS_NAIVE = 10.0
P99_LIMIT_MS = 10.0

# The rows `--baselines` adds (not targets): they show how much of the gap is the server's.
NGINX_COPYING = "(e) nginx, sendfile off"
BARE_APP_ROW = "(f) bare ASGI app, uvicorn"


def print_table(
    rounds: list[Result], args: argparse.Namespace, threads: int = 2, *, decides: bool = True
) -> bool:
    """Print the results, ratios and targets; True when every target passes.

    `rounds` are the runs of one wrk thread count; with `decides` false its verdicts are shown
    in lower case and do not count (only the `-t1` runs decide when they were made).
    """
    results = median_rounds(rounds)
    loads = [row.load for row in rounds]
    print(
        f"\nwrk -t{threads} -c{args.connections} -d{args.duration}s --latency, "
        f"{os.cpu_count()} CPUs, all on 127.0.0.1, median of {args.rounds} round(s), "
        f"load average {min(loads):.2f}-{max(loads):.2f}\n"
    )
    columns = (
        f"| {'server':<28} | {'file':<32} | {'req/s':>9} | {'p99 ms':>8} | {'errors':>6} "
        f"| {'CPU us/req':>10} |"
    )
    print(columns)
    print("|" + "|".join(":" + "-" * (len(cell) - 1) for cell in columns.split("|")[1:-1]) + "|")
    for row in results:
        print(
            f"| {row.server:<28} | {row.file:<32} | {row.requests_per_s:9.0f} "
            f"| {row.p99_ms:8.2f} | {row.errors:6d} | {row.cpu_us:10.1f} |"
        )

    # Keyed by (a)…(d) plus the server name after the comma, e.g. ("(b)", "uvicorn").
    by = {(row.server[:3], row.server.rpartition(", ")[2], row.file): row for row in results}
    named = {(row.server[:3], row.server.rpartition(", ")[2]): row.server for row in results}
    nginx = results[0].server.rpartition(", ")[2]
    naive = next(row.server for row in results if row.server.startswith("(d)")).rpartition(", ")[2]
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
        counts = server == PROXY_SERVER and decides
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
    print_cpu(rounds, [named["(b)", server] for server in args.servers], named["(a)", nginx])
    print_baselines(rounds, named["(b)", PROXY_SERVER], named["(a)", nginx])
    print("\nRatios are medians of the rounds' own ratios; each round's, in order:")
    load_by_round = {row.round: row.load for row in rounds}
    print(
        "  load average at each round's end: "
        + " ".join(f"{v:.2f}" for v in load_by_round.values())
    )
    for line in spreads:
        print(f"  {line}")
    print(
        f"\n`scalemesh serve proxy` runs {PROXY_SERVER}; its rows decide PASS/FAIL"
        + ("." if decides else f" (with -t1; these -t{threads} verdicts are shown only).")
    )
    errors = sum(row.errors for row in results)
    if errors:
        print(f"\nwarning: wrk counted {errors} errors or non-2xx answers (see the table)")
    return ok


def round_ratios(rounds: list[Result], top: str, bottom: str, file: str) -> list[float]:
    """`top`'s req/s over `bottom`'s for `file`, one ratio per round, in round order."""
    rate = {(row.server, row.file, row.round): row.requests_per_s for row in rounds}
    numbers = sorted({row.round for row in rounds})
    return [rate[top, file, number] / rate[bottom, file, number] for number in numbers]


def print_baselines(rounds: list[Result], ours: str, nginx: str) -> None:
    """With `--baselines`: what the server costs any app, and what nginx gains by not copying.

    Each pair's req/s ratio and its CPU ratio (the bottom's CPU per answer over the top's, so
    both read "higher is better for the top"), medians of the rounds' own ratios.
    """
    if not {NGINX_COPYING, BARE_APP_ROW} <= {row.server for row in rounds}:
        return
    pairs = (
        (BARE_APP_ROW, nginx, "the most an answer through ASGI reaches under our server"),
        (ours, BARE_APP_ROW, "the proxy, whose replays skip ASGI, against that"),
        (NGINX_COPYING, nginx, "what sendfile (the body never copied) is worth to nginx"),
        (ours, NGINX_COPYING, "the proxy (sendfile from 64 KiB) against nginx copying"),
    )
    cpu = {(row.server, row.file, row.round): row.cpu_us for row in rounds}
    numbers = sorted({row.round for row in rounds})
    print("\nBaselines (not targets): req/s and CPU ratios, the median and each round's:")
    for top, bottom, meaning in pairs:
        print(f"  {top} over {bottom}: {meaning}")
        for file in dict.fromkeys(row.file for row in rounds):
            rates = round_ratios(rounds, top, bottom, file)
            cpus = [cpu[bottom, file, n] / cpu[top, file, n] for n in numbers if cpu[top, file, n]]
            shown = " ".join(f"{r:.2f}" for r in rates)
            line = f"    {file}: req/s {statistics.median(rates):.2f} ({shown})"
            if cpus:
                shown = " ".join(f"{r:.2f}" for r in cpus)
                line += f", CPU {statistics.median(cpus):.2f} ({shown})"
            print(line)
