"""The reconcile loop: the database is the queue, and every API process drives it.

Each pass says this replica is alive, publishes ready deployments not yet published, wraps up
deployments that reached a final state (`app.reconcile_finish`), polls the builds in progress,
and starts queued ones while there are free build slots. Every step is a conditional update,
so any number of processes can run the loop at once, and a pass after a crash picks up where
the last one stopped: nothing stays `queued` or `building` for ever.

A replica judges only the builds it started (`runner_owner`): only its runner knows how they
are doing. A build whose replica died (`app.replicas`) is adopted by exactly one other: it
polls it when its runner can see the handle (ECS), else queues it again (a local build died
with its replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from app import aliases
from app.aliases import AliasAnnouncer
from app.builds.specs import CloneTokenDelayed, CloneTokenUnavailable, SpecMaker
from app.builds.tokens import BuildTokens
from app.database import AnyEngine
from app.deployments.build_config import record_config
from app.deployments.lifecycle import DeploymentState
from app.deployments.publish import publish_pending
from app.deployments.records import RunningBuild
from app.deployments.skips import skipped_reason
from app.deployments.transitions import defer, move, requeue
from app.domains.rechecks import DomainRechecks
from app.errors import ErrorCode
from app.github.api import GitHubApi
from app.logs.bus import LogBus
from app.projects.envvars import Sealer, SealError
from app.reconcile_finish import Finisher
from app.replicas import Replica, Seen
from app.retention.chore_loop import Retention
from app.runners.api import BuildRunner, RunnerError, RunStatus
from app.settings import Settings
from app.storage import Storage
from app.tables import Deployment
from builder.events import LogEvent
from builder.spec import MANIFEST, output_prefix

log = logging.getLogger(__name__)

S = DeploymentState
# A build gets this long past its own timeout to report back before it is stopped.
TIMEOUT_GRACE = timedelta(seconds=60)
# A claimed deployment whose runner never got a handle (the process died in between).
START_GRACE = timedelta(seconds=60)
MAX_ERROR = 500
TOKEN_RETRY = timedelta(seconds=15)
"""How long a build waits for another clone token when GitHub did not say how long."""


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        engine: AnyEngine,
        storage: Storage,
        bus: LogBus,
        runner: BuildRunner,
        sealer: Sealer,
        announce: AliasAnnouncer | None = None,
        github: GitHubApi | None = None,
        tokens: BuildTokens | None = None,
        replica: Replica | None = None,
        on_finished: Callable[[DeploymentState, datetime | None], None] | None = None,
        domains: DomainRechecks | None = None,
        retention: Retention | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.storage = storage
        self.bus = bus
        self.runner = runner
        self.sealer = sealer
        self.announce = announce or aliases.announcer(None)
        self.github = github
        self.specs = SpecMaker(settings, sealer, github)
        self.tokens = tokens or BuildTokens()
        self.replica = replica or Replica(settings.reconcile_interval)
        self.finisher = Finisher(
            settings, storage, bus, runner, self.tokens, on_finished, replica_id=self.replica.id
        )
        self._wake = asyncio.Event()
        self.domains = domains
        """Custom domains' DNS re-checks, a pass of which starts with each of ours."""
        self.retention = retention

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Reconcile for ever, every `reconcile_interval` seconds or when woken."""
        while True:
            try:
                await self.tick()
            except Exception:
                # One bad pass (database blip, storage outage) must not stop the loop.
                log.exception("reconcile pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.reconcile_interval)
            self._wake.clear()

    async def tick(self) -> None:
        await self.replica.beat()
        if self.domains is not None:
            self.domains.kick()
        if self.retention is not None:
            self.retention.kick()  # teardown, retention policy, storage sweep (`app.retention`)
        await self._publish_pending()
        await self.finisher.pending()
        await self._stop_ended()
        await self._poll_building()
        await self._start_queued()

    async def finish(self, deployment_id: str) -> None:
        """Wrap up a deployment that reached a final state (or leave it to the next pass)."""
        await self.finisher.finish(deployment_id)

    # --- starting -------------------------------------------------------------------------

    async def _start_queued(self) -> None:
        building = await Deployment.count().where(Deployment.state == S.BUILDING)
        slots = self.settings.max_concurrent_builds - building
        if slots <= 0:
            return
        queued: list[object] = await (
            Deployment.select(Deployment._meta.primary_key)
            .where(
                (Deployment.state == S.QUEUED)
                & (Deployment.start_after.is_null() | (Deployment.start_after <= datetime.now(UTC)))
            )
            .order_by(Deployment.created_at)
            .limit(slots)
            .output(as_list=True)
        )
        for key in queued:
            deployment_id = str(key)
            if await move(
                deployment_id,
                [S.QUEUED],
                S.BUILDING,
                started_at=datetime.now(UTC),
                new_attempt=True,
                owner=self.replica.id,
            ):
                await self._start(deployment_id)

    async def _start(self, deployment_id: str) -> None:
        try:
            spec = await self.specs.make(deployment_id)
        except SealError:
            await self._fail(
                deployment_id,
                "the project's env vars cannot be decrypted: was SCALEMESH_SECRET_KEY changed?",
                ErrorCode.ENV_UNOPENABLE,
            )
            return
        except CloneTokenDelayed as exc:
            await self._wait_for_token(deployment_id, exc)
            return
        except CloneTokenUnavailable as exc:
            await self._fail(deployment_id, str(exc), ErrorCode.CLONE_TOKEN_UNAVAILABLE)
            return
        await self.bus.append(
            deployment_id,
            _line(f"Building {spec.sha[:7]}" + (f" ({spec.git_ref})" if spec.git_ref else "")),
        )
        try:
            handle = await self.runner.start(spec)
        except RunnerError as exc:
            await self._fail(
                deployment_id, f"the build could not start: {exc}", ErrorCode.START_FAILED
            )
            return
        saved = await (
            Deployment.update({Deployment.runner_handle: handle})
            .where(
                (Deployment._meta.primary_key == deployment_id) & (Deployment.state == S.BUILDING)
            )
            .returning(Deployment._meta.primary_key)
        )
        if not saved:
            # Cancelled while the runner was starting it: whoever finished it had no handle.
            await self.finisher.cancel_quietly(deployment_id, handle)
            return
        log.info("build started", extra={"deployment_id": deployment_id, "handle": handle})

    async def _wait_for_token(self, deployment_id: str, exc: CloneTokenDelayed) -> None:
        """GitHub could not mint a clone token for now: queue the build again for later, without
        counting this as an attempt."""
        wait = TOKEN_RETRY if exc.retry_after is None else timedelta(seconds=exc.retry_after)
        if not await defer(deployment_id, datetime.now(UTC) + wait):
            return
        log.warning(
            "no clone token yet; queued again",
            extra={"deployment_id": deployment_id, "error": str(exc), "wait": wait.total_seconds()},
        )
        await self.bus.append(
            deployment_id, _line(f"{exc}; trying again in {wait.total_seconds():g} s")
        )

    # --- watching -------------------------------------------------------------------------

    async def _poll_building(self) -> None:
        rows = await Deployment.select(*RunningBuild.COLUMNS).where(Deployment.state == S.BUILDING)
        now = datetime.now(UTC)
        replicas: dict[str, Seen] | None = None
        for row in rows:
            build = RunningBuild.of(row)
            if build.owner == self.replica.id:
                await self._poll(build, now)
                continue
            if replicas is None:
                replicas = await self.replica.on_record()
            owner = replicas.get(build.owner or "")
            if owner is None or not owner.alive:
                await self._adopt(build, now, owner)
            # else: its own replica judges it; this one cannot see how it is doing.

    async def _stop_ended(self) -> None:
        """Stop the builds this replica runs whose deployments another replica ended (a cancel
        served there): only this one's runner may reach them."""
        rows = await Deployment.select(
            Deployment._meta.primary_key, Deployment.runner_handle
        ).where(
            (Deployment.runner_owner == self.replica.id)
            & Deployment.state.is_in([S.FAILED, S.CANCELLED])
            & Deployment.runner_handle.is_not_null()
        )
        for row in rows:
            deployment_id = str(row["id"])
            await self.finisher.cancel_quietly(deployment_id, str(row["runner_handle"]))
            await Deployment.update({Deployment.runner_owner: None}).where(
                Deployment._meta.primary_key == deployment_id
            )

    async def _adopt(self, build: RunningBuild, now: datetime, owner: Seen | None) -> None:
        """Take over a build whose replica (`owner`, if still on record) died: exactly one
        replica gets it."""
        owned = (
            Deployment.runner_owner.is_null()
            if build.owner is None
            else Deployment.runner_owner == build.owner
        )
        adopted = await (
            Deployment.update({Deployment.runner_owner: self.replica.id})
            .where(
                (Deployment._meta.primary_key == build.id)
                & (Deployment.state == S.BUILDING)
                & owned
            )
            .returning(Deployment._meta.primary_key)
        )
        if not adopted:
            return  # another replica adopted it first
        log.warning(
            "build adopted from a dead replica",
            extra={"deployment_id": build.id, "dead_replica": build.owner},
        )
        if build.runner_handle is None:
            await self._interrupted(build.id, "interrupted by a restart before it began")
        elif self.runner.shared_handles or (owner is not None and owner.host == self.replica.host):
            await self._poll(build, now)
        else:
            # A local build on another machine: it died with its replica (PR_SET_PDEATHSIG).
            await self._interrupted(build.id, "interrupted by a restart")

    async def _poll(self, build: RunningBuild, now: datetime) -> None:
        deployment_id, handle = build.id, build.runner_handle
        started_at = build.started_at or now
        if handle is None:
            if now - started_at > START_GRACE:
                await self._interrupted(deployment_id, "interrupted by a restart before it began")
            return
        try:
            state = await self.runner.poll(handle)
        except RunnerError as exc:
            # The runner's service is unreachable for now; the next pass asks again.
            log.warning("poll failed", extra={"deployment_id": deployment_id, "error": str(exc)})
            return
        if state.status is RunStatus.RUNNING:
            timeout = self.settings.build_timeout
            if now - started_at > timedelta(seconds=timeout) + TIMEOUT_GRACE:
                await self.finisher.cancel_quietly(deployment_id, handle)
                await self._fail(
                    deployment_id, f"the build timed out after {timeout} s", ErrorCode.TIMEOUT
                )
        elif state.status is RunStatus.SUCCEEDED:
            prefix = output_prefix(build.project_id, deployment_id)
            if await self.storage.exists(prefix + MANIFEST):
                await record_config(self.storage, prefix, deployment_id)
                await self._ready(deployment_id)
            elif (reason := await skipped_reason(self.storage, prefix)) is not None:
                await self._skipped(deployment_id, reason)
            else:
                await self._fail(
                    deployment_id,
                    "the build finished without uploading its files",
                    ErrorCode.NO_OUTPUT,
                )
        elif state.status is RunStatus.FAILED:
            reason = await self._reason(deployment_id) or state.reason or "the build failed"
            await self._fail(deployment_id, reason, ErrorCode.BUILD_FAILED)
        else:
            await self._interrupted(deployment_id, state.reason or "interrupted by a restart")

    async def _interrupted(self, deployment_id: str, reason: str) -> None:
        """Its runner is gone (it died with its API process): build it again, a few times."""
        attempts = self.settings.build_attempts
        if await requeue(deployment_id, attempts):
            log.warning(
                "build interrupted; queued again",
                extra={"deployment_id": deployment_id, "error": reason},
            )
            await self.bus.append(deployment_id, _line(f"The build was {reason}; building again"))
            self.wake()
            return
        await self._fail(
            deployment_id,
            f"{reason}; gave up after {attempts} attempt{'s' if attempts != 1 else ''}",
            ErrorCode.INTERRUPTED,
        )

    async def _reason(self, deployment_id: str) -> str | None:
        """The builder's own one-line reason, else its last error output."""
        events = await self.bus.read(deployment_id)
        for event in reversed(events):
            if event.get("type") == "end" and event.get("error"):
                return str(event["error"])
        for event in reversed(events):
            if event.get("type") == "line" and event.get("stream") == "stderr":
                return str(event.get("text", "")).strip() or None
        return None

    # --- ending ---------------------------------------------------------------------------

    async def _ready(self, deployment_id: str) -> None:
        # `ready` and "still to publish" in one statement: a crash after it leaves the publish
        # to the next pass, on any replica.
        if await move(
            deployment_id, [S.BUILDING], S.READY, ready_at=datetime.now(UTC), publish=True
        ):
            log.info("deployment ready", extra={"deployment_id": deployment_id})
            await self._publish(deployment_id)
        await self.finish(deployment_id)

    async def _skipped(self, deployment_id: str, reason: str) -> None:
        """The build decided not to deploy: final, no alias moves (`error` says why)."""
        one_line = " ".join(reason.split())[:MAX_ERROR]
        if await move(deployment_id, [S.BUILDING], S.SKIPPED, error=one_line):
            log.info("deployment skipped", extra={"deployment_id": deployment_id, "why": one_line})
        await self.finish(deployment_id)

    async def _publish_pending(self) -> None:
        pending: list[object] = await (
            Deployment.select(Deployment._meta.primary_key)
            .where((Deployment.state == S.READY) & Deployment.publish_pending.eq(True))
            .output(as_list=True)
        )
        for deployment_id in pending:
            await self._publish(str(deployment_id))

    async def _publish(self, deployment_id: str) -> None:
        try:
            await publish_pending(self.engine, deployment_id, self.announce)
        except Exception as exc:
            # Still marked: the next pass, on whichever replica, publishes it.
            log.error(
                "publishing failed", extra={"deployment_id": deployment_id, "error": repr(exc)}
            )

    async def _fail(self, deployment_id: str, reason: str, code: ErrorCode) -> None:
        """Fail the deployment; the code's kind says whether the fault is ours or the build's."""
        one_line = " ".join(reason.split())[:MAX_ERROR]
        if await move(
            deployment_id, [S.QUEUED, S.BUILDING], S.FAILED, error=one_line, error_code=code
        ):
            log.info("deployment failed", extra={"deployment_id": deployment_id, "error": one_line})
        await self.finish(deployment_id)


def _line(text: str) -> LogEvent:
    return {"type": "line", "ts": time.time(), "stream": "system", "text": text}
