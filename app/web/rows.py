"""Deployments as the dashboard's tables show them: durations, short ids, Promote or Rollback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from app.deployments.lifecycle import DeploymentState
from app.deployments.views import DeploymentView
from app.errors import ErrorCode
from app.projects.routes import ProjectOut

DEPLOYMENTS_SHOWN = 25

REASONS: Mapping[ErrorCode, str] = MappingProxyType(
    {
        ErrorCode.BUILD_FAILED: "Build failed",
        ErrorCode.TIMEOUT: "Timed out",
        ErrorCode.NO_OUTPUT: "Uploaded nothing (our fault)",
        ErrorCode.START_FAILED: "Could not start (our fault)",
        ErrorCode.ENV_UNOPENABLE: "Env vars unreadable (our fault)",
        ErrorCode.CLONE_TOKEN_UNAVAILABLE: "No clone token (our fault)",
        ErrorCode.INTERRUPTED: "Interrupted (our fault)",
        ErrorCode.CANCELLED: "Cancelled",
        ErrorCode.SUPERSEDED: "Superseded",
        ErrorCode.BRANCH_DELETED: "Branch deleted",
        ErrorCode.FORK_REFUSED: "Not built (fork)",
        ErrorCode.ALIAS_TAKEN: "Hostname taken",
    }
)
"""What the dashboard calls each way a deployment can end, before its message."""


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = round(seconds)
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"


@dataclass(frozen=True, slots=True)
class DeploymentRow:
    id: str
    short_id: str
    state: str
    target: str
    branch: str | None
    ref: str
    sha: str
    commit_message: str
    """Its first line."""
    created_at: datetime
    took: str
    url: str
    aliases: list[str]
    error: str | None
    reason: str | None
    """`REASONS` of its error code."""
    production: bool
    promote: str | None
    """`Promote` or `Rollback` when it is ready and not in production, else None."""
    finished: bool
    github_error: str | None = None
    """Why GitHub has not heard of its latest change, when reporting failed."""
    github_refused: bool = False

    @classmethod
    def of(cls, view: DeploymentView, now: datetime | None = None) -> DeploymentRow:
        end = view.ready_at or view.finished_at or (None if view.finished else now or _now())
        took = (end - view.started_at).total_seconds() if view.started_at and end else None
        promote = None
        if view.state is DeploymentState.READY and not view.production:
            promote = "Rollback" if view.older_than_production else "Promote"
        return cls(
            id=view.id,
            short_id=view.short_id,
            state=view.state.value,
            target=view.target.value,
            branch=view.branch,
            ref=view.ref,
            sha=view.sha,
            commit_message=view.commit_message.split("\n", 1)[0],
            created_at=view.created_at,
            took=duration(took),
            url=view.url,
            aliases=list(view.alias_urls),
            error=view.error,
            reason=None if view.error_code is None else REASONS[view.error_code],
            production=view.production,
            promote=promote,
            finished=view.finished,
            github_error=view.github_error,
            github_refused=view.github_refused,
        )


@dataclass(frozen=True, slots=True)
class ProjectCard:
    project: ProjectOut
    last: DeploymentRow | None


def _now() -> datetime:
    return datetime.now(UTC)
