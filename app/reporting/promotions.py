"""Tell GitHub which deployment serves production after a promote, rollback or unpin.

The move records what GitHub must hear (a `PromotionReport` row, written in the transaction
that moves production: `app.deployments.pinning`); the request never waits on GitHub. Each
reporter pass (`app.reporting.reporter`) then tells GitHub, each project's promotes in the
order they happened (a later one waits while an earlier one is due again), and deletes the
row. A failure is retried as a deployment report is (`app.reporting.retries`): a transient one
later, with backoff or after GitHub's wait; one GitHub refused stays, stamped `failed_at`, and
is not tried again. A failure never undoes the promote.

The deployment production now serves gets a `success` status in the Production environment
(its `environment_url` production's address); a preview, or a deployment GitHub never heard of
(a manual one, an unreported one), first gets a GitHub Deployment of its own there. The one it
replaced is marked `inactive`, and so is the one a previous promote reported, which a push may
have replaced since.

While production is pinned, a new production build that goes ready is told `inactive` rather
than `success` (`held_back`): GitHub makes the latest `success` its environment's live
deployment, and that would not be the one serving production.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from piccolo.columns.combination import WhereRaw

from app.deployments.lifecycle import DeploymentState, Target
from app.deployments.pinning import Promotion
from app.deployments.views import DeploymentView, DeploymentViews
from app.github.api import GitHubApi, GitHubError
from app.installations.service import covered_id
from app.projects.pins import read_pin
from app.reporting.environments import production_domain
from app.reporting.messages import shorten
from app.reporting.phases import environment
from app.reporting.retries import CLAIM_TTL, Failure
from app.settings import Settings
from app.tables import Deployment, Project, PromotionReport

log = logging.getLogger(__name__)

BATCH = 50
R = PromotionReport
_FIRST_OF_ITS_PROJECT = WhereRaw(
    """NOT EXISTS (
        SELECT 1 FROM scalemesh_promotion_report earlier
        WHERE earlier.project = scalemesh_promotion_report.project
        AND earlier.id < scalemesh_promotion_report.id AND earlier.failed_at IS NULL
    )"""
)
"""No earlier promote of the project is still to be told: GitHub hears them in order, or a
late retry of an old one would mark the newer one `inactive`. (Raw SQL: Piccolo has no
correlated subquery.)"""


async def held_back(view: DeploymentView) -> bool:
    """A ready production deployment production is pinned away from."""
    if view.target is not Target.PRODUCTION or view.state is not DeploymentState.READY:
        return False
    pin = await read_pin(view.project_id)
    return pin is not None and pin.deployment_id != view.id


@dataclass(frozen=True, slots=True)
class Pending:
    """A promote GitHub has not heard of yet, and how often telling it failed."""

    id: int
    attempts: int
    promotion: Promotion

    COLUMNS = (R._meta.primary_key, R.attempts, R.project, R.deployment, R.replaced, R.pinned)

    @classmethod
    def of(cls, row: dict[str, Any]) -> Pending:
        replaced = row["replaced"]
        return cls(
            id=int(row["id"]),
            attempts=int(row["attempts"]),
            promotion=Promotion(
                project_id=int(row["project"]),
                deployment_id=str(row["deployment"]),
                replaced_id=None if replaced is None else str(replaced),
                pinned=bool(row["pinned"]),
            ),
        )


class PromotionReports:
    """The reporter's pass over recorded promotes: GitHub Deployment statuses, retried."""

    def __init__(self, settings: Settings, github: GitHubApi) -> None:
        self.github = github
        self.views = DeploymentViews(settings)

    async def tick(self, now: datetime) -> int:
        """Tell GitHub of the promotes due at `now`; how many it was told of."""
        told = 0
        for pending in await self._due(now):
            claim = await self._claim(pending)
            if claim is None:
                continue  # another replica is telling GitHub about it
            try:
                sent = await self._send(pending.promotion)
            except GitHubError as exc:
                await self._failed(pending, claim, exc, now)
                continue
            await R.delete().where((R._meta.primary_key == pending.id) & (R.claim == claim))
            told += sent
        return told

    async def _due(self, now: datetime) -> list[Pending]:
        """Up to `BATCH` reports due now, each its project's first, fewest failures first."""
        rows = await (
            R.select(*Pending.COLUMNS)
            .where(
                R.failed_at.is_null()
                & (R.next_at.is_null() | (R.next_at <= now))
                & (R.claim.is_null() | (R.claimed_until < datetime.now(UTC)))
                & _FIRST_OF_ITS_PROJECT
            )
            .order_by(R.attempts)
            .order_by(R._meta.primary_key)
            .limit(BATCH)
        )
        return [Pending.of(row) for row in rows]

    async def _claim(self, pending: Pending) -> str | None:
        """Take the report for this pass, so two replicas never tell GitHub both at once; a
        claim past its time belonged to a replica that died mid-report."""
        claim = secrets.token_hex(16)
        now = datetime.now(UTC)
        taken = await (
            R.update({R.claim: claim, R.claimed_until: now + timedelta(seconds=CLAIM_TTL)})
            .where(
                (R._meta.primary_key == pending.id) & (R.claim.is_null() | (R.claimed_until < now))
            )
            .returning(R._meta.primary_key)
        )
        return claim if taken else None

    async def _failed(self, pending: Pending, claim: str, exc: GitHubError, now: datetime) -> None:
        """Record a failed report: retried later if it may pass, never if GitHub refused it."""
        failure = Failure.of(exc, pending.attempts + 1, now)
        await R.update(
            {
                R.claim: None,
                R.claimed_until: None,
                R.attempts: pending.attempts + 1,
                R.error: failure.error,
                R.error_status: failure.status,
                R.next_at: failure.next_at,
                R.failed_at: failure.failed_at,
            }
        ).where((R._meta.primary_key == pending.id) & (R.claim == claim))
        context = {"deployment_id": pending.promotion.deployment_id, "error": str(exc)}
        if failure.failed_at is not None:
            log.warning("github refused the promote report; not retried", extra=context)
        else:
            log.warning("github not told of the promote; will retry", extra=context)

    async def _send(self, promotion: Promotion) -> int:
        """Tell GitHub: 1 when it was told, 0 when there is no one to tell (the project is not
        bound, or no installation covers its repository). `GitHubError` when it failed."""
        view = await self.views.one(Deployment._meta.primary_key == promotion.deployment_id)
        found = None if view is None else view.repository_id
        covering = None if found is None else await covered_id(found)
        if view is None or covering is None:
            return 0
        await self._report(view, promotion, covering.installation_id, covering.full_name)
        return 1

    async def _report(
        self, view: DeploymentView, promotion: Promotion, installation: int, repository: str
    ) -> None:
        github_id = view.github_deployment_id if view.target is Target.PRODUCTION else None
        if github_id is None:
            github_id = await self.github.create_deployment(
                installation,
                repository,
                sha=view.sha,
                environment=environment(view.slug, Target.PRODUCTION),
                description=shorten(f"{view.slug}: production deployment"),
                transient=False,
                production=True,
            )
            if view.target is Target.PRODUCTION:
                # Its own from now on: the reporter must not create a second one.
                await Deployment.update({Deployment.github_deployment_id: github_id}).where(
                    Deployment._meta.primary_key == view.id
                )
        done = "rolled back to" if promotion.pinned else "promoted"
        await self.github.set_deployment_status(
            installation,
            repository,
            github_id,
            state="success",
            environment_url=await production_domain(view.project_id) or view.production_url,
            log_url=view.log_url,
            description=shorten(f"Production {done} {view.sha[:7]}"),
        )
        for replaced in await self._replaced(promotion, github_id):
            await self.github.set_deployment_status(
                installation,
                repository,
                replaced,
                state="inactive",
                environment_url=None,
                log_url=view.log_url,
                description=shorten(f"Production moved to {view.sha[:7]}"),
            )
        await Project.update({Project.production_github_deployment_id: github_id}).where(
            Project._meta.primary_key == promotion.project_id
        )

    async def _replaced(self, promotion: Promotion, serving: int) -> list[int]:
        """The GitHub Deployments that showed production before: the replaced deployment's own
        (production ones only: a preview's is not in that environment) and the last promote's."""
        ids: set[int] = set()
        if promotion.replaced_id is not None:
            row = await (
                Deployment.select(Deployment.github_deployment_id)
                .where(
                    (Deployment._meta.primary_key == promotion.replaced_id)
                    & (Deployment.target == Target.PRODUCTION.value)
                )
                .first()
            )
            if row is not None and row["github_deployment_id"] is not None:
                ids.add(int(row["github_deployment_id"]))
        last: list[int | None] = await (
            Project.select(Project.production_github_deployment_id)
            .where(Project._meta.primary_key == promotion.project_id)
            .output(as_list=True)
        )
        ids.update(int(each) for each in last if each is not None)
        ids.discard(serving)
        return sorted(ids)
