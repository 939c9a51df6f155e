"""Build runners: start `python -m builder` somewhere, watch it, and stop it.

`LocalRunner` runs it as a subprocess on this machine; `EcsRunner` as an AWS ECS task.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from builder.spec import BuildSpec

if TYPE_CHECKING:
    from app.logs import LogBus
    from app.runners.ecs import EcsClient
    from app.settings import Settings


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    GONE = "gone"
    """The runner has no such build any more (e.g. its process died with a restart)."""


@dataclass(frozen=True, slots=True)
class RunState:
    status: RunStatus
    exit_code: int | None = None
    reason: str | None = None
    """Why it failed or is gone, in one line a user can read."""


class RunnerError(RuntimeError):
    """The runner could not start or reach a build (capacity, permissions, service down)."""


class BuildRunner(Protocol):
    async def start(self, spec: BuildSpec) -> str:
        """Start the build; return a handle to store with the deployment."""

    async def poll(self, handle: str) -> RunState: ...

    async def cancel(self, handle: str) -> None:
        """Stop the build if it still runs; a no-op for one that has ended."""

    async def aclose(self) -> None:
        """Release what the runner holds (tasks, subprocess pipes) at shutdown."""


CANCELLED_REASON = "cancelled by Scale Mesh"
"""The reason a build stopped because Scale Mesh asked it to (also sent to ECS `StopTask`)."""


def runner_from_settings(
    settings: Settings, bus: LogBus, ecs_client: EcsClient | None = None
) -> BuildRunner:
    """The runner `SCALEMESH_RUNNER` names; a boto3 ECS client is made unless one is given."""
    # Imported here: the implementations import this module for the shared types.
    from app.runners.ecs import EcsRunner
    from app.runners.local import LocalRunner
    from app.settings import Runner

    if settings.runner is Runner.LOCAL:
        return LocalRunner(bus, settings.runner_env, settings.data_dir / "builds")
    if settings.ecs is None:
        raise RunnerError("SCALEMESH_RUNNER=ecs needs the SCALEMESH_ECS_* settings")
    if settings.redis_url is None:
        raise RunnerError(
            "SCALEMESH_RUNNER=ecs needs SCALEMESH_REDIS_URL: ECS builds write their log to Redis"
        )
    owns_client = ecs_client is None
    if ecs_client is None:
        import boto3
        from botocore.config import Config

        # Bounded timeouts: a hung ECS call must not hold a worker thread for ever.
        config = Config(connect_timeout=10, read_timeout=30, retries={"mode": "standard"})
        ecs_client = boto3.client("ecs", config=config)
    return EcsRunner(ecs_client, settings.ecs, settings.redis_url.reveal(), owns_client=owns_client)
