"""What the client says after a deployment that did not go live, from its stable error code."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from app.errors import ErrorCode
from builder.events import LogEvent

OURS = "Scale Mesh's fault, not yours: deploy again"

ADVICE: Mapping[ErrorCode, str] = MappingProxyType(
    {
        ErrorCode.BUILD_FAILED: "fix the build and push again",
        ErrorCode.TIMEOUT: "make the build faster, or ask for a longer SCALEMESH_BUILD_TIMEOUT",
        ErrorCode.NO_OUTPUT: OURS,
        ErrorCode.START_FAILED: OURS,
        ErrorCode.ENV_UNOPENABLE: "set the project's env vars again: the secret key changed",
        ErrorCode.CLONE_TOKEN_UNAVAILABLE: "check that the GitHub App can read the repository",
        ErrorCode.INTERRUPTED: OURS,
        ErrorCode.CANCELLED: "cancelled on purpose",
        ErrorCode.SUPERSEDED: "a newer commit of the branch is being deployed instead",
        ErrorCode.BRANCH_DELETED: "its branch was deleted",
        ErrorCode.FORK_REFUSED: "a project owner can allow fork builds",
        ErrorCode.ALIAS_TAKEN: "another project owns that hostname: rename the project or branch",
    }
)
"""What to do about each way a deployment can end."""


_BY_NAME = {code.value: advice for code, advice in ADVICE.items()}


def explain(result: LogEvent) -> str:
    """`deployment <state>: <why> (<what to do>)` for a result that is not `ready`."""
    why = f"deployment {result.get('state')}: {result.get('error') or 'no reason given'}"
    advice = _BY_NAME.get(result.get("error_code") or "")
    return why if advice is None else f"{why} ({advice})"  # an older API sends no code
