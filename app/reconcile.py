"""The reconcile loop: the database is the queue, and every API process drives it.

Each pass wraps up deployments that reached a final state, polls the builds in progress, and
starts queued ones while there are free build slots. Every step is a conditional update, so
any number of processes can run the loop at once, and a pass after a crash picks up where the
last one stopped: nothing stays `queued` or `building` for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from app import aliases, hostnames
from app.aliases import AliasAnnouncer
from app.builds.specs import CloneTokenUnavailable, SpecMaker
from app.builds.tokens import BuildTokens
from app.database import AnyEngine
from app.deployments.lifecycle import FINAL_STATES, DeploymentState
from app.deployments.publish import publish
from app.deployments.records import Ending, RunningBuild
from app.deployments.transitions import move, requeue
from app.errors import ErrorCode
from app.github.api import GitHubApi
from app.logs.archive import archive
from app.logs.bus import LogBus
from app.projects.envvars import Sealer, SealError
from app.runners.api import BuildRunner, RunnerError, RunStatus
from app.settings import Settings
from app.storage import Storage, StorageError
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
        on_finished: Callable[[DeploymentState, datetime | None], None] | None = None,
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
        self._wake = asyncio.Event()
        self.on_finished = on_finished
        """Told each final state and when its build started (the API's build metrics)."""

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
        await self._finish_pending()
        await self._poll_building()
        await self._start_queued()

    # --- starting -------------------------------------------------------------------------

    async def _start_queued(self) -> None:
        building = await Deployment.count().where(Deployment.state == S.BUILDING)
        slots = self.settings.max_concurrent_builds - building
        if slots <= 0:
            return
        queued: list[object] = await (
            Deployment.select(Deployment._meta.primary_key)
            .where(Deployment.state == S.QUEUED)
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
            await self._cancel_quietly(deployment_id, handle)
            return
        log.info("build started", extra={"deployment_id": deployment_id, "handle": handle})

    # --- watching -------------------------------------------------------------------------

    async def _poll_building(self) -> None:
        rows = await Deployment.select(*RunningBuild.COLUMNS).where(Deployment.state == S.BUILDING)
        now = datetime.now(UTC)
        for row in rows:
            await self._poll(RunningBuild.of(row), now)

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
                await self._cancel_quietly(deployment_id, handle)
                await self._fail(
                    deployment_id, f"the build timed out after {timeout} s", ErrorCode.TIMEOUT
                )
        elif state.status is RunStatus.SUCCEEDED:
            manifest = output_prefix(build.project_id, deployment_id) + MANIFEST
            if await self.storage.exists(manifest):
                await self._ready(deployment_id)
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
        if await move(deployment_id, [S.BUILDING], S.READY, ready_at=datetime.now(UTC)):
            await publish(self.engine, deployment_id, self.announce)
            log.info("deployment ready", extra={"deployment_id": deployment_id})
        await self.finish(deployment_id)

    async def _fail(self, deployment_id: str, reason: str, code: ErrorCode) -> None:
        """Fail the deployment; the code's kind says whether the fault is ours or the build's."""
        one_line = " ".join(reason.split())[:MAX_ERROR]
        if await move(
            deployment_id, [S.QUEUED, S.BUILDING], S.FAILED, error=one_line, error_code=code
        ):
            log.info("deployment failed", extra={"deployment_id": deployment_id, "error": one_line})
        await self.finish(deployment_id)

    async def _finish_pending(self) -> None:
        pending: list[object] = await (
            Deployment.select(Deployment._meta.primary_key)
            .where(Deployment.state.is_in(list(FINAL_STATES)) & Deployment.finished_at.is_null())
            .output(as_list=True)
        )
        for deployment_id in pending:
            await self.finish(str(deployment_id))

    async def finish(self, deployment_id: str) -> None:
        """Stop the build if it still runs, write the result event and archive the log.

        Whoever sets `finished_at` first does this, once.
        """
        claimed = await (
            Deployment.update({Deployment.finished_at: datetime.now(UTC)})
            .where(
                (Deployment._meta.primary_key == deployment_id)
                & Deployment.finished_at.is_null()
                & Deployment.state.is_in(list(FINAL_STATES))
            )
            .returning(Deployment._meta.primary_key)
        )
        if not claimed:
            return
        # The build's token dies with it: nothing more reaches its log or fetches its spec.
        await self.tokens.revoke(deployment_id)
        row = await (
            Deployment.select(*Ending.COLUMNS)
            .where(Deployment._meta.primary_key == deployment_id)
            .first()
        )
        assert row is not None  # noqa: S101 - claimed by this very call
        ending = Ending.of(row)
        if self.on_finished is not None:
            self.on_finished(ending.state, ending.started_at)
        ready = ending.state is S.READY
        if ending.runner_handle is not None and not ready:
            await self._cancel_quietly(deployment_id, ending.runner_handle)
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
        try:
            await archive(self.bus, self.storage, deployment_id)
        except StorageError as exc:
            # The live copy stays readable; a later read still finds every line there.
            log.error(
                "log archive failed", extra={"deployment_id": deployment_id, "error": str(exc)}
            )

    async def _cancel_quietly(self, deployment_id: str, handle: str) -> None:
        try:
            await self.runner.cancel(handle)
        except RunnerError as exc:
            log.warning(
                "could not stop build", extra={"deployment_id": deployment_id, "error": str(exc)}
            )


def _line(text: str) -> LogEvent:
    return {"type": "line", "ts": time.time(), "stream": "system", "text": text}
