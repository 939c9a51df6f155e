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
from datetime import UTC, datetime, timedelta
from typing import Any

from app import aliases, deployments, envvars, hostnames, installations
from app.aliases import AliasAnnouncer
from app.database import AnyEngine
from app.envvars import Sealer, SealError
from app.github.api import GitHubApi, GitHubError
from app.logs import LogBus, LogEvent, archive
from app.runners import BuildRunner, RunnerError, RunStatus
from app.settings import Settings
from app.storage import Storage, StorageError
from app.tables import FINAL_STATES, Deployment, DeploymentState
from builder.spec import MANIFEST, BuildSpec, output_prefix

log = logging.getLogger(__name__)

S = DeploymentState
# A build gets this long past its own timeout to report back before it is stopped.
TIMEOUT_GRACE = timedelta(seconds=60)
# A claimed deployment whose runner never got a handle (the process died in between).
START_GRACE = timedelta(seconds=60)
MAX_ERROR = 500


class CloneTokenUnavailable(RuntimeError):
    """GitHub would not give a token for a private repository, so it cannot be cloned."""


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
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.storage = storage
        self.bus = bus
        self.runner = runner
        self.sealer = sealer
        self.announce = announce or aliases.announcer(None)
        self.github = github
        self._wake = asyncio.Event()

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
        rows = await (
            Deployment.select(Deployment._meta.primary_key)
            .where(Deployment.state == S.QUEUED)
            .order_by(Deployment.created_at)
            .limit(slots)
        )
        for row in rows:
            deployment_id = str(row["id"])
            if await deployments.move(
                deployment_id, [S.QUEUED], S.BUILDING, started_at=datetime.now(UTC)
            ):
                await self._start(deployment_id)

    async def _start(self, deployment_id: str) -> None:
        try:
            spec = await self._spec(deployment_id)
        except SealError:
            await self._fail(
                deployment_id,
                "the project's env vars cannot be decrypted: was SCALEMESH_SECRET_KEY changed?",
                platform=True,
            )
            return
        except CloneTokenUnavailable as exc:
            await self._fail(deployment_id, str(exc), platform=True)
            return
        await self.bus.append(
            deployment_id,
            _line(f"Building {spec.sha[:7]}" + (f" ({spec.git_ref})" if spec.git_ref else "")),
        )
        try:
            handle = await self.runner.start(spec)
        except RunnerError as exc:
            await self._fail(deployment_id, f"the build could not start: {exc}", platform=True)
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

    async def _spec(self, deployment_id: str) -> BuildSpec:
        row = await (
            Deployment.select(
                Deployment.project,
                Deployment.sha,
                Deployment.git_ref,
                Deployment.from_fork,
                Deployment.project.git_url,
                Deployment.project.github_repository,
                Deployment.project.root_directory,
                Deployment.project.install_command,
                Deployment.project.build_command,
                Deployment.project.output_directory,
            )
            .where(Deployment._meta.primary_key == deployment_id)
            .first()
        )
        assert row is not None  # noqa: S101 - it was claimed a moment ago
        project_id = int(row["project"])
        git_url, token = await self._source(deployment_id, row)
        return BuildSpec(
            deployment_id=deployment_id,
            project_id=project_id,
            git_url=git_url,
            token=token,
            sha=row["sha"],
            git_ref=row["git_ref"],
            storage_url=self.settings.storage.url,
            storage_endpoint_url=self.settings.storage.endpoint_url,
            root_directory=row["project.root_directory"],
            install_command=row["project.install_command"],
            build_command=row["project.build_command"],
            output_directory=row["project.output_directory"],
            # A fork's code never sees the project's secrets (DESIGN §7).
            env={} if row["from_fork"] else await envvars.load(self.sealer, project_id),
            timeout=self.settings.build_timeout,
        )

    async def _source(self, deployment_id: str, row: dict[str, Any]) -> tuple[str, str]:
        """Where to clone from, and the repo-scoped read-only token to clone with (or "")."""
        repository = row["project.github_repository"]
        covered = None if repository is None else await installations.covered(repository)
        if covered is None:
            return row["project.git_url"], ""
        if self.github is None:
            return covered.clone_url, ""
        try:
            token = await self.github.repo_token(covered.installation_id, covered.full_name)
        except GitHubError as exc:
            if covered.private:
                raise CloneTokenUnavailable(
                    f"GitHub gave no token to clone the private repository {covered.full_name}"
                ) from exc
            # A public repository clones without one.
            log.warning(
                "no clone token; cloning anonymously",
                extra={"deployment_id": deployment_id, "error": str(exc)},
            )
            return covered.clone_url, ""
        return covered.clone_url, token

    # --- watching -------------------------------------------------------------------------

    async def _poll_building(self) -> None:
        rows = await Deployment.select(
            Deployment._meta.primary_key,
            Deployment.project,
            Deployment.runner_handle,
            Deployment.started_at,
        ).where(Deployment.state == S.BUILDING)
        now = datetime.now(UTC)
        for row in rows:
            await self._poll(row, now)

    async def _poll(self, row: dict[str, Any], now: datetime) -> None:
        deployment_id, handle = str(row["id"]), row["runner_handle"]
        started_at: datetime = row["started_at"] or now
        if handle is None:
            if now - started_at > START_GRACE:
                await self._fail(
                    deployment_id, "interrupted by a restart before the build began", platform=True
                )
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
                await self._fail(deployment_id, f"the build timed out after {timeout} s")
        elif state.status is RunStatus.SUCCEEDED:
            manifest = output_prefix(int(row["project"]), deployment_id) + MANIFEST
            if await self.storage.exists(manifest):
                await self._ready(deployment_id)
            else:
                await self._fail(
                    deployment_id, "the build finished without uploading its files", platform=True
                )
        elif state.status is RunStatus.FAILED:
            reason = await self._reason(deployment_id) or state.reason or "the build failed"
            await self._fail(deployment_id, reason)
        else:
            await self._fail(
                deployment_id, state.reason or "interrupted by a restart", platform=True
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
        if await deployments.move(deployment_id, [S.BUILDING], S.READY, ready_at=datetime.now(UTC)):
            await deployments.publish(self.engine, deployment_id, self.announce)
            log.info("deployment ready", extra={"deployment_id": deployment_id})
        await self.finish(deployment_id)

    async def _fail(self, deployment_id: str, reason: str, *, platform: bool = False) -> None:
        """Fail the deployment; `platform` when the fault is ours, not the repository's."""
        one_line = " ".join(reason.split())[:MAX_ERROR]
        if await deployments.move(
            deployment_id,
            [S.QUEUED, S.BUILDING],
            S.FAILED,
            error=one_line,
            platform_fault=platform,
        ):
            log.info("deployment failed", extra={"deployment_id": deployment_id, "error": one_line})
        await self.finish(deployment_id)

    async def _finish_pending(self) -> None:
        rows = await Deployment.select(Deployment._meta.primary_key).where(
            Deployment.state.is_in(list(FINAL_STATES)) & Deployment.finished_at.is_null()
        )
        for row in rows:
            await self.finish(str(row["id"]))

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
        row = await (
            Deployment.select(
                Deployment.state,
                Deployment.runner_handle,
                Deployment.error,
                Deployment.project.slug,
            )
            .where(Deployment._meta.primary_key == deployment_id)
            .first()
        )
        assert row is not None  # noqa: S101 - claimed by this very call
        handle = row["runner_handle"]
        ready = row["state"] == S.READY
        if handle is not None and not ready:
            await self._cancel_quietly(deployment_id, handle)
        label = hostnames.deployment_label(row["project.slug"], deployment_id)
        await self.bus.append(
            deployment_id,
            {
                "type": "result",
                "ts": time.time(),
                "state": str(row["state"]),
                "error": None if ready else row["error"],
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
