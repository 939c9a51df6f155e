"""The words GitHub shows for a deployment: a status description per state and per error code.

`app.errors` gives every code an HTTP status; this gives every deployment code its GitHub text.
Texts are looked up when shown, from the code stored with the deployment; nothing here compares
message strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from app.deployments.lifecycle import DeploymentState
from app.deployments.views import DeploymentView
from app.errors import ErrorCode

MAX_DESCRIPTION = 140
PLATFORM_FAULT = "Scale Mesh could not finish this build (our fault, it is logged). Push to retry."
CANCELLED = "Cancelled: {error}"

GITHUB_TEXT: Mapping[ErrorCode, str] = MappingProxyType(
    {
        ErrorCode.BUILD_FAILED: "{error}",
        ErrorCode.TIMEOUT: "{error}",
        ErrorCode.NO_OUTPUT: PLATFORM_FAULT,
        ErrorCode.START_FAILED: PLATFORM_FAULT,
        ErrorCode.ENV_UNOPENABLE: PLATFORM_FAULT,
        ErrorCode.CLONE_TOKEN_UNAVAILABLE: PLATFORM_FAULT,
        ErrorCode.INTERRUPTED: PLATFORM_FAULT,
        ErrorCode.CANCELLED: CANCELLED,
        ErrorCode.SUPERSEDED: CANCELLED,
        ErrorCode.BRANCH_DELETED: CANCELLED,
        ErrorCode.FORK_REFUSED: "{error}",
        ErrorCode.ALIAS_TAKEN: "{error}",
    }
)
"""How GitHub words each way a deployment can end; `{error}` is its stored message."""

BADGES: Mapping[DeploymentState, str] = MappingProxyType(
    {
        DeploymentState.QUEUED: "⏳ Queued",
        DeploymentState.BUILDING: "🔨 Building",
        DeploymentState.READY: "✅ Ready",
        DeploymentState.FAILED: "❌ Failed",
        DeploymentState.CANCELLED: "⏹️ Cancelled",
        DeploymentState.SKIPPED: "⏭️ Skipped",
    }
)
"""The PR comment's Status column."""
FORK_BADGE = "🔒 Not built (fork)"


def shorten(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """One line of at most `limit` characters (GitHub refuses longer status descriptions)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def description(view: DeploymentView) -> str:
    """The commit status (and GitHub Deployment status) description of a deployment."""
    if view.state is DeploymentState.QUEUED:
        return "Waiting for a builder…"
    if view.state is DeploymentState.BUILDING:
        return "Building…"
    if view.state is DeploymentState.READY:
        return shorten(f"Deployed to {view.url}")
    if view.state is DeploymentState.SKIPPED:
        return shorten(f"Skipped: {view.error or 'nothing to deploy'}")
    code = view.error_code or (
        ErrorCode.CANCELLED if view.state is DeploymentState.CANCELLED else ErrorCode.BUILD_FAILED
    )
    stopped = view.state is DeploymentState.CANCELLED
    fallback = "by a user" if stopped else "The build failed; see the log."
    return shorten(GITHUB_TEXT[code].format(error=view.error or fallback))


def badge(view: DeploymentView) -> str:
    return FORK_BADGE if view.error_code is ErrorCode.FORK_REFUSED else BADGES[view.state]
