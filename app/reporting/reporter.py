"""The reporting loop: tell GitHub each deployment's current phase, and retry until it has heard.

Driven by state, not by events: every change to a deployment sets `report_pending`, and each pass
tells GitHub about such deployments (GitHub Deployment, commit status, PR comment), then records
the phase it told. Only deployments of projects bound to their repository's id are reported, to
the installation covering that id; the others are settled `unreported`.

A failure is kept on the deployment's row (`report_error`, `report_error_status`) for the API and
the dashboard to show. A transient one (network, 5xx, rate limit) is retried from
`report_next_at`, 2 s later, then twice as long each time up to 5 minutes, or after the wait
GitHub asked for if that is longer (`app.reporting.retries`). A permanent one (GitHub refused
the request itself: a 4xx such as 422) is recorded in `report_failed_at` and not retried; the
next change of the deployment is a new report and is tried again. Each pass takes the due
reports with the fewest failures first, so reports that keep failing never hold back the others.
Reporting never blocks or fails a build, and a GitHub outage heals by itself.

The same pass then tells GitHub of recorded promotes and rollbacks, retried the same way
(`app.reporting.promotions`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from app.deployments.diffs import ProductionDiffs
from app.deployments.lifecycle import DeploymentState, Target
from app.deployments.views import DeploymentView, DeploymentViews
from app.github.api import GitHubApi, GitHubError
from app.installations.service import Covered, covered_id
from app.reporting.comment import CommentBusy, PullRequestComments
from app.reporting.environments import environment_url
from app.reporting.messages import description, shorten
from app.reporting.phases import (
    ReportedPhase,
    environment,
    phase_of,
    to_github_deployment_state,
    to_github_state,
)
from app.reporting.promotions import PromotionReports, held_back
from app.reporting.retries import CLAIM_TTL, Failure
from app.settings import Settings
from app.storage import Storage
from app.tables import Deployment

log = logging.getLogger(__name__)

BATCH = 50
_NOTHING_TO_VISIT = (DeploymentState.CANCELLED, DeploymentState.SKIPPED)
"""No GitHub Deployment is made for these when GitHub first hears of them already so; one
made earlier becomes `inactive`."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Reporter:
    """Tells GitHub about deployments whose latest change it has not heard of.

    `clock` tells the time retries are due by."""

    def __init__(
        self,
        settings: Settings,
        github: GitHubApi,
        *,
        clock: Callable[[], datetime] = _utcnow,
        storage: Storage | None = None,
    ) -> None:
        self.settings = settings
        self.github = github
        self.clock = clock
        self.views = DeploymentViews(settings)
        diffs = None if storage is None else ProductionDiffs(storage)  # the comment's diffs
        self.comments = PullRequestComments(github, self.views, diffs)
        self.promotions = PromotionReports(settings, github)

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                # A database blip must not end reporting for the life of the process.
                log.exception("github report pass failed")
            await asyncio.sleep(self.settings.reconcile_interval)

    async def tick(self) -> int:
        """One pass; returns how many deployments and promotes GitHub was told about."""
        told = await self._report_deployments()
        return told + await self.promotions.tick(self.clock())

    async def _report_deployments(self) -> int:
        due, failures = await self._due()
        told = 0
        for view in due:
            claim = await self._claim(view)
            if claim is None:
                continue  # another replica is telling GitHub about it
            # Only a project bound to the repository's id speaks on it; naming it is not enough.
            found = None if view.repository_id is None else await covered_id(view.repository_id)
            if found is None:
                await self._settle(view, claim, ReportedPhase.UNREPORTED)
                continue
            try:
                await self.report(view, found)
            except (GitHubError, CommentBusy) as exc:
                await self._failed(view, claim, exc, failures[view.id] + 1)
                continue
            await self._settle(view, claim, phase_of(view))
            told += 1
        return told

    async def _due(self) -> tuple[list[DeploymentView], dict[str, int]]:
        """Up to `BATCH` reports due now, fewest failures first, and each one's failures."""
        now = self.clock()
        rows = await (
            Deployment.select(Deployment._meta.primary_key, Deployment.report_attempts)
            .where(
                (Deployment.report_pending == True)  # noqa: E712 - SQL, not Python
                & Deployment.report_failed_at.is_null()
                & (Deployment.report_next_at.is_null() | (Deployment.report_next_at <= now))
                & (
                    Deployment.report_claim.is_null()
                    | (Deployment.report_claimed_until < datetime.now(UTC))
                )
                & Deployment.project.github_repository.is_not_null()
            )
            .order_by(Deployment.report_attempts)
            .order_by(Deployment.created_at)
            .order_by(Deployment._meta.primary_key)
            .limit(BATCH)
        )
        failures = {str(row["id"]): int(row["report_attempts"]) for row in rows}
        if not failures:
            return [], failures
        views = await self.views.find(
            Deployment._meta.primary_key.is_in(list(failures)), limit=BATCH, newest_first=False
        )
        order = {deployment_id: index for index, deployment_id in enumerate(failures)}
        return sorted(views, key=lambda view: order[view.id]), failures

    async def _claim(self, view: DeploymentView) -> str | None:
        """Take the deployment for this pass, so two API replicas never report it both at once
        (they would create two GitHub Deployments). A claim past its time belonged to a replica
        that died mid-report, and may be taken over."""
        claim = secrets.token_hex(16)
        now = datetime.now(UTC)
        taken = await (
            Deployment.update(
                {
                    Deployment.report_claim: claim,
                    Deployment.report_claimed_until: now + timedelta(seconds=CLAIM_TTL),
                }
            )
            .where(
                (Deployment._meta.primary_key == view.id)
                & (Deployment.report_pending == True)  # noqa: E712 - SQL, not Python
                & (Deployment.report_claim.is_null() | (Deployment.report_claimed_until < now))
                # As read: a change since would be reported with stale words.
                & (Deployment.state == view.state)
                & (Deployment.retired == view.retired)
            )
            .returning(Deployment._meta.primary_key)
        )
        return claim if taken else None

    async def _settle(self, view: DeploymentView, claim: str, phase: ReportedPhase) -> None:
        """Record that GitHub now knows `phase`, and forget any failure.

        Only if nothing changed meanwhile: every change clears the claim and sets
        `report_pending` again, and then the newer state is reported in its turn.
        """
        changes: dict[Any, Any] = {
            Deployment.report_claim: None,
            Deployment.report_claimed_until: None,
            Deployment.report_pending: False,
            Deployment.reported_phase: phase,
            Deployment.report_attempts: 0,
            Deployment.report_next_at: None,
            Deployment.report_error: None,
            Deployment.report_error_status: None,
            Deployment.report_failed_at: None,
        }
        await Deployment.update(changes).where(
            (Deployment._meta.primary_key == view.id) & (Deployment.report_claim == claim)
        )

    async def _failed(
        self, view: DeploymentView, claim: str, exc: GitHubError | CommentBusy, failures: int
    ) -> None:
        """Record a failed report: retried later if it may pass, never if GitHub refused it."""
        now = self.clock()
        failure = Failure.of(exc, failures, now)
        changes: dict[Any, Any] = {
            Deployment.report_claim: None,
            Deployment.report_claimed_until: None,
            Deployment.report_attempts: failures,
            Deployment.report_error: failure.error,
            Deployment.report_error_status: failure.status,
            Deployment.report_failed_at: failure.failed_at,
            Deployment.report_next_at: failure.next_at,
        }
        context = {"deployment_id": view.id, "project": view.slug, "error": str(exc)}
        if failure.next_at is None:
            log.warning("github refused the report; not retried", extra=context)
        else:
            delay = (failure.next_at - now).total_seconds()
            log.warning("github report failed; will retry", extra=context | {"retry_in": delay})
        await Deployment.update(changes).where(
            (Deployment._meta.primary_key == view.id) & (Deployment.report_claim == claim)
        )

    async def report(self, view: DeploymentView, found: Covered) -> None:
        """Bring GitHub up to date with one deployment."""
        text = description(view)
        installation, repository = found.installation_id, found.full_name
        github_id = view.github_deployment_id
        never_built = view.state in _NOTHING_TO_VISIT or view.retired
        if github_id is None and not never_built:
            github_id = await self.github.create_deployment(
                installation,
                repository,
                sha=view.sha,
                environment=environment(view.slug, view.target),
                description=shorten(f"{view.slug}: {view.target} deployment"),
                transient=view.target is not Target.PRODUCTION,
                production=view.target is Target.PRODUCTION,
            )
            # Saved at once: a retry must not create a second GitHub deployment.
            await Deployment.update({Deployment.github_deployment_id: github_id}).where(
                Deployment._meta.primary_key == view.id
            )
        if github_id is not None:
            ready = view.state is DeploymentState.READY and not view.retired
            state = to_github_deployment_state(
                view.state, platform_fault=view.platform_fault, retired=view.retired
            )
            if await held_back(view):  # production pinned to another: not GitHub's live one
                state, ready = "inactive", False
            await self.github.set_deployment_status(
                installation,
                repository,
                github_id,
                state=state,
                environment_url=await environment_url(view) if ready else None,
                log_url=view.log_url,
                description=text,
            )
        if not view.retired:
            await self.github.set_commit_status(
                installation,
                repository,
                view.sha,
                state=to_github_state(view.state, platform_fault=view.platform_fault),
                context=f"scalemesh/{view.slug}",
                description=text,
                target_url=view.url if view.state is DeploymentState.READY else view.log_url,
            )
        # A torn-down preview's row says so (`app.retention`): its comment is written again.
        if view.pr_number is not None and (not view.retired or view.pruned_at is not None):
            await self.comments.refresh(
                installation, repository, view.pr_number, repository_id=found.github_id
            )
        log.info(
            "github told",
            extra={"deployment_id": view.id, "project": view.slug, "phase": phase_of(view)},
        )
