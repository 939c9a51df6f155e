"""Move a deployment between states with one conditional update, and flag it for reporting.

The check and the change are one `UPDATE … WHERE state IN (…) RETURNING`, so of two replicas
racing, exactly one wins. Every change also marks the deployment as news for GitHub
(`report_again`), which drops any report in flight: the newer state is reported in its turn.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from app.deployments.lifecycle import DeploymentState, check_transition
from app.errors import KIND, ErrorCode, ErrorKind
from app.tables import Deployment


def report_again() -> dict[Any, Any]:
    """The column values that tell the reporter GitHub is behind this deployment.

    A change is a new report: due at once, even if GitHub refused the previous one."""
    return {
        Deployment.report_pending: True,
        Deployment.report_claim: None,
        Deployment.report_claimed_until: None,
        Deployment.report_attempts: 0,
        Deployment.report_next_at: None,
        Deployment.report_failed_at: None,
    }


async def move(
    deployment_id: str,
    sources: Iterable[DeploymentState],
    target: DeploymentState,
    *,
    error: str | None = None,
    error_code: ErrorCode | None = None,
    started_at: datetime | None = None,
    ready_at: datetime | None = None,
    new_attempt: bool = False,
    owner: str | None = None,
    publish: bool = False,
) -> bool:
    """Move a deployment from any of `sources` to `target`; False when it was in none of them.

    `new_attempt`: a build starts for it (counted against `Settings.build_attempts`), run by
    the replica `owner`. `publish`: its aliases are still to be pointed at it, a step set in
    the same statement as `ready`, so no crash leaves it ready but never published."""
    sources = tuple(sources)
    check_transition(sources, target)
    changes: dict[Any, Any] = {Deployment.state: target, **report_again()}
    if error is not None:
        changes[Deployment.error] = error
    if error_code is not None:
        changes[Deployment.error_code] = error_code
        # Readers take this from the code's kind; stored too, so that a database migrated
        # back to 0003 (whose code reads only this column) still tells ours from theirs.
        changes[Deployment.platform_fault] = KIND[error_code] is ErrorKind.PLATFORM
    if started_at is not None:
        changes[Deployment.started_at] = started_at
    if ready_at is not None:
        changes[Deployment.ready_at] = ready_at
    if new_attempt:
        changes[Deployment.attempts] = Deployment.attempts + 1
    if owner is not None:
        changes[Deployment.runner_owner] = owner
    if publish:
        changes[Deployment.publish_pending] = True
    rows = await (
        Deployment.update(changes)
        .where(
            (Deployment._meta.primary_key == deployment_id) & Deployment.state.is_in(list(sources))
        )
        .returning(Deployment._meta.primary_key)
    )
    return bool(rows)


async def requeue(deployment_id: str, max_attempts: int) -> bool:
    """Put a build whose runner is gone back in the queue, unless it has had `max_attempts`.

    False when it is no longer building or has no attempt left (the caller then fails it)."""
    return await _back_in_queue(deployment_id, {}, Deployment.attempts < max_attempts)


async def defer(deployment_id: str, until: datetime) -> bool:
    """Put a build that could not start for a passing reason (GitHub busy) back in the queue,
    to start no sooner than `until`; the attempt it took is given back.

    False when it is no longer building."""
    given_back = {Deployment.start_after: until, Deployment.attempts: Deployment.attempts - 1}
    return await _back_in_queue(deployment_id, given_back)


async def _back_in_queue(deployment_id: str, changes: dict[Any, Any], only_if: Any = None) -> bool:
    """A building deployment queued again, with no runner and no start; False when it was not
    building (or `only_if` did not hold)."""
    check_transition([DeploymentState.BUILDING], DeploymentState.QUEUED)
    where = (Deployment._meta.primary_key == deployment_id) & (
        Deployment.state == DeploymentState.BUILDING
    )
    rows = await (
        Deployment.update(
            {
                Deployment.state: DeploymentState.QUEUED,
                Deployment.runner_handle: None,
                Deployment.runner_owner: None,
                Deployment.started_at: None,
                **changes,
                **report_again(),
            }
        )
        .where(where if only_if is None else where & only_if)
        .returning(Deployment._meta.primary_key)
    )
    return bool(rows)
