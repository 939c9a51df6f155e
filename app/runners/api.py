"""What a build runner offers (`BuildRunner`), the states it reports, and its error.

`app.runners.local.LocalRunner` runs builds as subprocesses on this machine;
`app.runners.ecs.EcsRunner` as AWS ECS tasks. `app.asgi` picks one from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from builder.spec import BuildSpec


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
    shared_handles: bool
    """Whether a replica on another machine can reach this runner's builds by their handles
    (ECS: yes, any replica asks ECS). When False (local builds), only a replica on the same
    machine can: elsewhere the build of a dead replica is gone with it."""

    async def start(self, spec: BuildSpec) -> str:
        """Start the build; return a handle to store with the deployment."""

    async def poll(self, handle: str) -> RunState: ...

    async def cancel(self, handle: str) -> None:
        """Stop the build if it still runs; a no-op for one that has ended."""

    async def aclose(self) -> None:
        """Release what the runner holds (tasks, subprocess pipes) at shutdown."""


CANCELLED_REASON = "cancelled by Scale Mesh"
"""The reason a build stopped because Scale Mesh asked it to (also sent to ECS `StopTask`)."""
