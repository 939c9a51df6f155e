"""`GET /health` and `/readyz`: is each configured component answering? `/livez`: is this
process? Liveness asks nothing of the database, Redis or storage (a restart cannot mend an
outage of theirs), readiness asks all three."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import anyio
import msgspec
from litestar import Response, get
from litestar.di import NamedDependency

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0

HealthCheck = Callable[[], Awaitable[None]]
HealthChecks = Mapping[str, HealthCheck]
DeadLetterCount = Callable[[], Awaitable[int]]


UNSAFE_BUILDS = (
    "builds run WITHOUT a sandbox (SCALEMESH_UNSAFE_LOCAL_BUILDS=1): "
    "any repository's code can read this machine's Scale Mesh data"
)


class ReadyOut(msgspec.Struct):
    status: str
    """`ok`, or `degraded` when any component is down."""
    components: dict[str, str]
    """Each component's state: `ok`, or `down: <reason>`."""
    warnings: list[str] = msgspec.field(default_factory=list)
    """What works but is unsafe (builds without a sandbox)."""


class HealthOut(ReadyOut):
    dead_letters: int | None = None
    """Webhook deliveries given up on (listed at `/deliveries`); null when it cannot be read."""


async def run_checks(checks: HealthChecks, warnings: list[str] | None = None) -> ReadyOut:
    """Each check's state. Anyone may ask, so a failure shows its kind only; its message
    (which may name hosts, ports, users or buckets) goes to the log."""
    components: dict[str, str] = {}

    async def run(name: str, check: HealthCheck) -> None:
        try:
            with anyio.fail_after(CHECK_TIMEOUT_S):
                await check()
        except TimeoutError:
            components[name] = f"down: no answer within {CHECK_TIMEOUT_S:g} s"
        except Exception as exc:
            components[name] = f"down: {type(exc).__name__}"
            log.warning("health check error", extra={"component": name, "error": f"{exc}"[:500]})
        else:
            components[name] = "ok"

    async with anyio.create_task_group() as group:
        for name, check in checks.items():
            group.start_soon(run, name, check)
    down = sorted(name for name, state in components.items() if state != "ok")
    if down:
        log.warning("health check failed", extra={"components": down})
    return ReadyOut(
        status="degraded" if down else "ok",
        components={name: components[name] for name in checks},
        warnings=list(warnings or []),
    )


async def counted(count: DeadLetterCount) -> int | None:
    """The count, or None when it cannot be read (the database check then says why)."""
    try:
        with anyio.fail_after(CHECK_TIMEOUT_S):
            return await count()
    except Exception:
        return None


@get("/health", summary="Whether the database, storage and log bus answer", cache=False)
async def health(
    health_checks: NamedDependency[HealthChecks],
    health_warnings: NamedDependency[list[str]],
    dead_letter_count: NamedDependency[DeadLetterCount],
) -> Response[HealthOut]:
    ready = await run_checks(health_checks, health_warnings)
    result = HealthOut(
        **msgspec.structs.asdict(ready), dead_letters=await counted(dead_letter_count)
    )
    return Response(result, status_code=200 if result.status == "ok" else 503)


@get("/readyz", summary="Ready to serve: the database, storage and log bus answer", cache=False)
async def readyz(
    health_checks: NamedDependency[HealthChecks], health_warnings: NamedDependency[list[str]]
) -> Response[ReadyOut]:
    result = await run_checks(health_checks, health_warnings)
    return Response(result, status_code=200 if result.status == "ok" else 503)


class Alive(msgspec.Struct):
    status: str = "alive"


@get("/livez", summary="The process answers (nothing else is asked)", cache=False)
async def livez() -> Alive:
    return Alive()


ROUTES = [health, readyz, livez]
