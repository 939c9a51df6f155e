"""GitHub's words for our states: the one mapping from a deployment to what GitHub is told.

Internal states (`app.deployments.lifecycle`) are kept apart from what GitHub shows: a commit
status state, a GitHub Deployment status, and the phase recorded once GitHub has heard it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from app.deployments.lifecycle import DeploymentState, Target
from app.deployments.views import DeploymentView

S = DeploymentState


class ReportedPhase(StrEnum):
    """What GitHub was last told of a deployment (`Deployment.reported_phase`)."""

    QUEUED = "queued"
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    INACTIVE = "inactive"
    """Retired: its pull request closed or its branch was deleted."""
    UNREPORTED = "unreported"
    """Its project is not bound to the repository, or no installation covers the id it is bound
    to: there was no one on GitHub to tell (or no right to)."""


_COMMIT_STATES: Mapping[DeploymentState, str] = MappingProxyType(
    {
        S.QUEUED: "pending",
        S.BUILDING: "pending",
        S.READY: "success",
        S.FAILED: "failure",
        S.CANCELLED: "failure",
        # Success, so that a required check does not block a pull request nothing was built for.
        S.SKIPPED: "success",
    }
)
_DEPLOYMENT_STATES: Mapping[DeploymentState, str] = MappingProxyType(
    {
        S.QUEUED: "queued",
        S.BUILDING: "in_progress",
        S.READY: "success",
        S.FAILED: "failure",
        S.CANCELLED: "inactive",
        S.SKIPPED: "inactive",
    }
)


def phase_of(view: DeploymentView) -> ReportedPhase:
    return ReportedPhase.INACTIVE if view.retired else ReportedPhase(view.state.value)


def to_github_state(state: DeploymentState, *, platform_fault: bool = False) -> str:
    """The commit-status state GitHub is sent for a deployment state."""
    return "error" if platform_fault else _COMMIT_STATES[state]


def to_github_deployment_state(
    state: DeploymentState, *, platform_fault: bool = False, retired: bool = False
) -> str:
    """The GitHub Deployment status for a deployment state.

    A retired deployment (its pull request closed, its branch deleted), a cancelled and a
    skipped one are `inactive`: nothing failed, there is just nothing to visit (and, unlike
    `success`, it leaves the environment's live deployment active).
    """
    if retired or state in (S.CANCELLED, S.SKIPPED):
        return "inactive"
    return "error" if platform_fault else _DEPLOYMENT_STATES[state]


def environment(slug: str, target: Target) -> str:
    """The GitHub environment a deployment belongs to."""
    return "Production" if target is Target.PRODUCTION else f"Preview \N{EN DASH} {slug}"
