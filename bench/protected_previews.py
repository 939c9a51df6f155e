"""Benchmark what protection costs the proxy: one file served protected (with the cookie) and
unprotected, side by side, through the proxy's own ASGI app in this process.

    .venv/bin/python bench/protected_previews.py [--seconds 2] [--rounds 5]

Seeds one ready deployment (`bench/proxy_site.py`'s 2 KB `index.html`, asked for as `/`) of
project `web`, whose protection is `previews`: `web` (production) is open, `web-git-main` (a
branch) is protected.
Each round sends the same GET to each host for `--seconds`, back to back: the open one with a
browser's headers, the protected one with the same headers plus the proxy's cookie. No server
and no sockets: this measures the proxy's own work per request (the replay path and, for the
protected host, the cookie check), which is what protection adds; a server's own cost
(`bench/proxy.py`) comes on top of both. The gate checks a cookie's HMAC the first time it sees
it and its expiry after that, so the rounds measure the steady state of a browser that keeps
sending the same cookie. Prints each host's median requests/s and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import database
from app import preview_tokens as tokens
from app.settings import Settings
from app.settings_parsing import key_id_of
from app.storage.choice import storage_from_settings
from app.tables import Alias, Project
from bench.proxy_site import make_files, manifest, seed, ship
from builder.spec import output_prefix
from proxy.asgi import ProxyApp, running

SECRET = "bench-secret-key-" + "x" * 32
OPEN_HOST, PROTECTED = b"web.localhost", "web-git-main"
HEADERS = [
    (b"accept", b"text/html,application/xhtml+xml"),
    (b"user-agent", b"Mozilla/5.0 (bench)"),
    (b"accept-language", b"en"),
]


def scope(host: bytes, extra: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": [(b"host", host), *HEADERS, *extra],
    }


async def rate(app: ProxyApp, request: dict[str, Any], seconds: float) -> float:
    """Requests per second answered 200 with the whole file, for `seconds`."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(200):
            await app(request, receive, send)
        count += 200
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - started
    if set(statuses) != {200}:
        raise SystemExit(f"expected only 200s, got {sorted(set(statuses))}")
    return count / elapsed


async def measure(seconds: float, rounds: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(
            {
                "SCALEMESH_DATA_DIR": f"{tmp}/data",
                "SCALEMESH_SECRET_KEY": SECRET,
                "SCALEMESH_STORAGE_URL": f"file://{tmp}/storage",
                "SCALEMESH_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite",
            }
        )
        engine = database.make_engine(settings.database)
        database.bind(engine)
        await database.migrate(engine)
        deployment_id = str(uuid.uuid4())
        project_id = await seed(settings, deployment_id)
        await Project.update({Project.protection: "previews"}).where(Project.id == project_id)
        await Alias.insert(Alias(hostname=PROTECTED, project=project_id, deployment=deployment_id))
        files = make_files(1)
        record = manifest(files, project_id, deployment_id)
        await ship(
            storage_from_settings(settings.storage),
            output_prefix(project_id, deployment_id),
            files,
            json.dumps(record).encode(),
        )
        key = tokens.preview_keys([(key_id_of(SECRET), SECRET)])
        cookie = tokens.sign(key, tokens.COOKIE, PROTECTED, tokens.COOKIE_SECONDS)
        open_request = scope(OPEN_HOST, [])
        protected_request = scope(
            f"{PROTECTED}.localhost".encode(),
            [(b"cookie", f"_ga=GA1.1.1; {tokens.COOKIE_NAME}={cookie}".encode())],
        )
        open_rates, protected_rates = [], []
        async with running(settings) as proxy:
            app = ProxyApp(settings, proxy)
            await rate(app, open_request, 0.3)  # warm: caches filled, answers remembered
            await rate(app, protected_request, 0.3)
            for _ in range(rounds):
                open_rates.append(await rate(app, open_request, seconds))
                protected_rates.append(await rate(app, protected_request, seconds))
        return open_rates, protected_rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    open_rates, protected_rates = asyncio.run(measure(args.seconds, args.rounds))
    ratios = [p / o for o, p in zip(open_rates, protected_rates, strict=True)]
    print(f"{'host':<42} {'req/s (median)':>15}")
    print(f"{'web (open, production)':<42} {statistics.median(open_rates):>15,.0f}")
    protected = statistics.median(protected_rates)
    print(f"{'web-git-main (protected, with cookie)':<42} {protected:>15,.0f}")
    print(
        f"ratio protected/open: {statistics.median(ratios):.2f} (rounds: "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + ")"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
