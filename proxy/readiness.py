"""The proxy's probes: `/_scalemesh/livez` (this process answers) and `/_scalemesh/readyz` (the
database, storage and Redis it reads from answer), for the liveness and readiness probes.

Liveness asks nothing of anyone else: a restart cannot mend a database outage, so only
readiness (taking the pod out of the Service) depends on them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping

from redis.asyncio import Redis

from app import database
from app.storage import Storage

log = logging.getLogger(__name__)

LIVEZ_PATH = "/_scalemesh/livez"
READYZ_PATH = "/_scalemesh/readyz"
PROBE_PATHS = frozenset({LIVEZ_PATH, READYZ_PATH})
CHECK_TIMEOUT_S = 3.0
READYZ_KEY = "__outputs/.scalemesh-readyz"
"""A key the proxy may read (its storage grant covers `__outputs/`); it need not exist."""

READYZ_FRESH_S = 1.0
"""How long one readiness answer serves every probe. `/_scalemesh/readyz` answers on any Host,
so a flood of it on a site's hostname costs the database, storage and Redis one round of
checks a second per process, not one per request."""

Check = Callable[[], Awaitable[object]]
Checks = Mapping[str, Check]


def read_checks(
    storage: Storage,
    engine: database.AnyEngine | None = None,
    redis: Redis | None = None,
) -> dict[str, Check]:
    """What readiness asks: reads only, as the proxy's database role and storage grant allow."""
    checks: dict[str, Check] = {}
    if engine is not None:
        checks["database"] = lambda: database.ping(engine)
    checks["storage"] = lambda: storage.exists(READYZ_KEY)
    if redis is not None:
        checks["redis"] = redis.ping
    return checks


class Readiness:
    """`readiness(checks)`, asked at most once per `fresh_s`; callers meanwhile share it."""

    def __init__(
        self,
        checks: Checks,
        fresh_s: float = READYZ_FRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.checks = checks
        self._fresh_s = fresh_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._answer: tuple[bool, dict[str, str]] = (False, {})
        self._asked_at = -math.inf

    async def __call__(self) -> tuple[bool, dict[str, str]]:
        async with self._lock:
            if self._clock() - self._asked_at >= self._fresh_s:
                self._answer = await readiness(self.checks)
                self._asked_at = self._clock()
            return self._answer


async def probe(
    path: str, ready_now: Callable[[], Awaitable[tuple[bool, dict[str, str]]]], *, reasons: bool
) -> tuple[int, dict[str, object]]:
    """The status and JSON body of a probe at `path` (one of `PROBE_PATHS`).

    Why a component is down (its error: addresses, names of hosts and buckets) only with
    `reasons`, for an internal host; any other `Host` (a tenant's, an attacker's) learns no
    more than `down`, and the reasons are logged.
    """
    if path == LIVEZ_PATH:
        return 200, {"status": "alive"}
    ready, components = await ready_now()
    if not reasons:
        components = {name: state.partition(":")[0] for name, state in components.items()}
    return (
        (200, {"status": "ok", "components": components})
        if ready
        else (
            503,
            {"status": "degraded", "components": components},
        )
    )


async def readiness(checks: Mapping[str, Check]) -> tuple[bool, dict[str, str]]:
    """Whether every check passed, and each one's state: `ok` or `down: <reason>`."""

    async def run(check: Check) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except TimeoutError:
            return f"down: no answer within {CHECK_TIMEOUT_S:g} s"
        except Exception as exc:
            return f"down: {type(exc).__name__}: {exc}".strip()[:200]
        return "ok"

    states = await asyncio.gather(*(run(check) for check in checks.values()))
    components = dict(zip(checks, states, strict=True))
    down = {name: state for name, state in sorted(components.items()) if state != "ok"}
    if down:
        log.warning("proxy not ready", extra={"components": down})
    return not down, components
