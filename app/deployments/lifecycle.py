"""The deployment lifecycle: its states, which moves between them are allowed, and its targets.

These are our internal states (RTD's "not to be confused with external representations of
status"); `app.reporting.phases` maps them to what GitHub is told.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType


class DeploymentState(StrEnum):
    QUEUED = "queued"
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    """Built to the point of deciding not to deploy (ignoreCommand, monorepo paths, previews
    off): `error` holds why, `error_code` stays empty; no alias moves to it."""


class Target(StrEnum):
    PRODUCTION = "production"
    PREVIEW = "preview"


S = DeploymentState
FINAL_STATES = frozenset({S.READY, S.FAILED, S.CANCELLED, S.SKIPPED})
UNFINISHED = (S.QUEUED, S.BUILDING)

TRANSITIONS: Mapping[DeploymentState, frozenset[DeploymentState]] = MappingProxyType(
    {
        S.QUEUED: frozenset({S.BUILDING, S.FAILED, S.CANCELLED}),
        # Back to the queue: its runner died with its API process (at most `build_attempts`).
        S.BUILDING: frozenset({S.QUEUED, S.READY, S.FAILED, S.CANCELLED, S.SKIPPED}),
        S.READY: frozenset(),
        S.FAILED: frozenset(),
        S.CANCELLED: frozenset(),
        S.SKIPPED: frozenset(),
    }
)
"""Every allowed move; final states go nowhere."""


def check_transition(sources: Iterable[DeploymentState], target: DeploymentState) -> None:
    """Refuse a move the lifecycle does not allow (a bug in the caller, not bad input)."""
    for source in sources:
        if target not in TRANSITIONS[source]:
            raise ValueError(f"{source} → {target} is not a deployment transition")
