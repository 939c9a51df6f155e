"""Tell GitHub which deployment serves production after a promote or rollback.

The deployment production now serves gets a `success` status in the Production environment
(its `environment_url` production's address); a preview, or a deployment GitHub never heard of
(a manual one, an unreported one), first gets a GitHub Deployment of its own there. The one it
replaced is marked `inactive`, and so is the one a previous promote reported, which a push may
have replaced since. Best-effort, as all reporting is: a GitHub failure is logged and never
undoes the promote.

While production is pinned, a new production build that goes ready is told `inactive` rather
than `success` (`held_back`): GitHub makes the latest `success` its environment's live
deployment, and that would not be the one serving production.
"""

from __future__ import annotations

import logging

from app.deployments.lifecycle import DeploymentState, Target
from app.deployments.pinning import Promotion
from app.deployments.views import DeploymentView, DeploymentViews
from app.github.api import GitHubApi, GitHubError
from app.installations.service import covered_id
from app.projects.pins import read_pin
from app.reporting.environments import production_domain
from app.reporting.messages import shorten
from app.reporting.phases import environment
from app.settings import Settings
from app.tables import Deployment, Project

log = logging.getLogger(__name__)


async def held_back(view: DeploymentView) -> bool:
    """A ready production deployment production is pinned away from."""
    if view.target is not Target.PRODUCTION or view.state is not DeploymentState.READY:
        return False
    pin = await read_pin(view.project_id)
    return pin is not None and pin.deployment_id != view.id


class PromotionReports:
    """GitHub Deployment statuses for promotes and rollbacks."""

    def __init__(self, settings: Settings, github: GitHubApi) -> None:
        self.github = github
        self.views = DeploymentViews(settings)

    async def report(self, promotion: Promotion) -> bool:
        """Tell GitHub; False when it could not be told (or there is no one to tell)."""
        view = await self.views.one(Deployment._meta.primary_key == promotion.deployment_id)
        found = None if view is None else view.repository_id
        covering = None if found is None else await covered_id(found)
        if view is None or covering is None:
            return False
        try:
            await self._report(view, promotion, covering.installation_id, covering.full_name)
        except GitHubError as exc:
            log.warning(
                "github not told of the promote",
                extra={"deployment_id": view.id, "project": view.slug, "error": str(exc)},
            )
            return False
        return True

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
