"""Wrap up a deployment that reached a final state, as a step any replica retries until done.

Wrapping up revokes the build's token, stops its build if it still runs, writes the log's
`result` event and archives the log. One replica at a time does it, under a lease
(`finish_claimed_until`); `finished_at` is set last, only once all of it is done. A failure on
the way (Redis or storage down, the replica killed) leaves it unfinished, and the next pass,
on any replica, does it again. Each part is safe to repeat: the result is written only when the
log has none, and a log already archived is not archived again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from piccolo.custom_types import Combinable

from app import hostnames
from app.builds.tokens import BuildTokens
from app.deployments.lifecycle import FINAL_STATES, DeploymentState
from app.deployments.records import Ending
from app.logs.archive import archive, archive_key
from app.logs.bus import LogBus, is_result
from app.runners.api import BuildRunner, RunnerError
from app.settings import Settings
from app.storage import Storage, StorageError
from app.tables import Deployment

log = logging.getLogger(__name__)

FINISH_LEASE = timedelta(seconds=30)
"""How long a replica may take to wrap one up before another may take it over (it died)."""


class Finisher:
    """Wraps up ended deployments: the last step of every build, retried until it is done."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        bus: LogBus,
        runner: BuildRunner,
        tokens: BuildTokens,
        on_finished: Callable[[DeploymentState, datetime | None], None] | None = None,
        *,
        replica_id: str = "",
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.bus = bus
        self.runner = runner
        self.tokens = tokens
        self.on_finished = on_finished
        """Told each final state and when its build started, once (the API's build metrics)."""
        self.replica_id = replica_id
        """This replica: it stops the builds it ran; those of another, that one stops."""

    async def pending(self) -> None:
        """Wrap up every ended deployment not wrapped up yet (nor being wrapped up)."""
        ids: list[object] = await (
            Deployment.select(Deployment._meta.primary_key)
            .where(_unfinished() & _lease_free(datetime.now(UTC)))
            .output(as_list=True)
        )
        for deployment_id in ids:
            await self.finish(str(deployment_id))

    async def finish(self, deployment_id: str) -> bool:
        """Wrap the deployment up, unless another replica is doing it or it is done already.

        True when this call finished it. A failure is logged and leaves it for the next pass.
        """
        now = datetime.now(UTC)
        claimed = await (
            Deployment.update({Deployment.finish_claimed_until: now + FINISH_LEASE})
            .where(
                (Deployment._meta.primary_key == deployment_id) & _unfinished() & _lease_free(now)
            )
            .returning(Deployment._meta.primary_key)
        )
        if not claimed:
            return False
        try:
            ending, left_running = await self._wrap_up(deployment_id)
        except Exception as exc:
            # Whatever failed (Redis, storage, the database), the next pass tries it all again.
            log.error(
                "log archive failed" if isinstance(exc, StorageError) else "finishing failed",
                extra={"deployment_id": deployment_id, "error": repr(exc)},
            )
            await Deployment.update({Deployment.finish_claimed_until: None}).where(
                Deployment._meta.primary_key == deployment_id
            )
            return False
        done: dict[Any, Any] = {
            Deployment.finished_at: datetime.now(UTC),
            Deployment.finish_claimed_until: None,
        }
        if not left_running:
            # Nothing is left for its replica to stop (`Reconciler._stop_ended`).
            done[Deployment.runner_owner] = None
        finished = await (
            Deployment.update(done)
            .where((Deployment._meta.primary_key == deployment_id) & _unfinished())
            .returning(Deployment._meta.primary_key)
        )
        if not finished:
            return False  # another replica took the lease over (this one was too slow) and won
        if self.on_finished is not None:
            self.on_finished(ending.state, ending.started_at)
        return True

    async def _wrap_up(self, deployment_id: str) -> tuple[Ending, bool]:
        """The ending, and whether its build may still run, left to its replica to stop."""
        # The build's token dies with it: nothing more reaches its log or fetches its spec.
        await self.tokens.revoke(deployment_id)
        row = await (
            Deployment.select(*Ending.COLUMNS)
            .where(Deployment._meta.primary_key == deployment_id)
            .first()
        )
        assert row is not None  # noqa: S101 - claimed just now, and deployments are not deleted
        ending = Ending.of(row)
        ready = ending.state is DeploymentState.READY
        handle = None if ready else ending.runner_handle
        left_running = handle is not None
        if handle is not None and self._reaches(ending):
            left_running = not await self.cancel_quietly(deployment_id, handle)
        events = await self.bus.read(deployment_id)
        if any(is_result(event) for event in events):
            pass  # written by an earlier try that failed after it
        elif events or not await self.storage.exists(archive_key(deployment_id)):
            label = hostnames.deployment_label(ending.slug, deployment_id)
            await self.bus.append(
                deployment_id,
                {
                    "type": "result",
                    "ts": time.time(),
                    "state": ending.state.value,
                    "error": None if ready else ending.error,
                    "error_code": None if ending.error_code is None else ending.error_code.value,
                    "url": self.settings.deployment_url(label) if ready else None,
                },
            )
        # Already archived (an earlier try failed after it): the bus is empty, nothing happens.
        await archive(self.bus, self.storage, deployment_id)
        return ending, left_running

    def _reaches(self, ending: Ending) -> bool:
        # A local handle names a process of its replica's machine: asked here, another machine
        # might signal an unrelated process. Its replica stops it (`Reconciler._stop_ended`).
        owner = ending.runner_owner
        return self.runner.shared_handles or owner is None or owner == self.replica_id

    async def cancel_quietly(self, deployment_id: str, handle: str) -> bool:
        """Stop the build; False (logged) when its runner could not be told."""
        try:
            await self.runner.cancel(handle)
        except RunnerError as exc:
            log.warning(
                "could not stop build", extra={"deployment_id": deployment_id, "error": str(exc)}
            )
            return False
        return True


def _unfinished() -> Combinable:
    # Ended, not yet wrapped up, and published first when ready: its log's result names a URL
    # that already serves it.
    return (
        Deployment.state.is_in(list(FINAL_STATES))
        & Deployment.finished_at.is_null()
        & Deployment.publish_pending.eq(False)
    )


def _lease_free(now: datetime) -> Combinable:
    return Deployment.finish_claimed_until.is_null() | (Deployment.finish_claimed_until < now)
