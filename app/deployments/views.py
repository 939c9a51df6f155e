"""The one read model of a deployment (`DeploymentView`), for the API, the dashboard and GitHub.

`DeploymentViews` reads deployments with their project, the hostnames pointing at them now (the
verified custom domains serving those labels too), and whether production does, in four
queries for any number of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from piccolo.custom_types import Combinable

from app import hostnames
from app.deployments.build_config import BuildConfig, stored
from app.deployments.lifecycle import FINAL_STATES, DeploymentState, Target
from app.errors import KIND, ErrorCode, ErrorKind
from app.settings import Settings
from app.tables import Alias, Deployment, Domain


@dataclass(frozen=True, slots=True)
class DeploymentView:
    id: str
    project_id: int
    slug: str
    repository: str | None
    """The project's GitHub repository (`owner/name`), if it builds one."""
    repository_id: int | None
    """GitHub's id of the repository the project is bound to; None when it is not bound."""
    state: DeploymentState
    target: Target
    ref: str
    sha: str
    branch: str | None
    pr_number: int | None
    commit_message: str
    created_at: datetime
    started_at: datetime | None
    ready_at: datetime | None
    finished_at: datetime | None
    error: str | None
    error_code: ErrorCode | None
    retired: bool
    github_deployment_id: int | None
    url: str
    """This deployment's own URL, which never changes."""
    log_url: str
    """Its page on the dashboard, with the live log."""
    alias_urls: tuple[str, ...]
    """Every URL that points at it now (production, branch, custom domains)."""
    production_url: str
    branch_url: str | None
    older_than_production: bool
    """Made before what production points at: pointing production here is a rollback."""
    github_error: str | None = None
    """Why telling GitHub of its latest change failed, until GitHub hears of it."""
    github_refused: bool = False
    """GitHub refused that report for good: it is not retried (until the next change)."""
    config: BuildConfig | None = None
    """The build's effective config, once ready (`app.deployments.build_config`)."""
    pruned_at: datetime | None = None
    """When its files were deleted (torn down, or past retention; `app.retention`)."""

    @property
    def short_id(self) -> str:
        return hostnames.short_id(self.id)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def production(self) -> bool:
        """Production points at it now."""
        return self.production_url in self.alias_urls

    @property
    def platform_fault(self) -> bool:
        """It failed by our fault, not the build's: GitHub gets `error`, not `failure`."""
        return self.error_code is not None and KIND[self.error_code] is ErrorKind.PLATFORM

    @property
    def environment_url(self) -> str:
        """Where this deployment's environment is visited: production, its branch, or itself."""
        if self.target is Target.PRODUCTION:
            return self.production_url
        return self.branch_url or self.url


_COLUMNS = (
    Deployment._meta.primary_key,
    Deployment.project,
    Deployment.project.slug,
    Deployment.project.github_repository,
    Deployment.project.github_repository_id,
    Deployment.state,
    Deployment.target,
    Deployment.git_ref,
    Deployment.sha,
    Deployment.branch,
    Deployment.pr_number,
    Deployment.commit_message,
    Deployment.created_at,
    Deployment.started_at,
    Deployment.ready_at,
    Deployment.finished_at,
    Deployment.error,
    Deployment.error_code,
    Deployment.retired,
    Deployment.github_deployment_id,
    Deployment.report_error,
    Deployment.report_failed_at,
    Deployment.config,
    Deployment.pruned_at,
)


class DeploymentViews:
    """Reads `DeploymentView`s; the settings give their URLs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def one(self, where: Combinable) -> DeploymentView | None:
        found = await self.find(where, limit=1)
        return found[0] if found else None

    async def find(
        self,
        where: Combinable,
        *,
        limit: int,
        newest_first: bool = True,
        offset: int = 0,
    ) -> list[DeploymentView]:
        rows = await (
            Deployment.select(*_COLUMNS)
            .where(where)
            .order_by(Deployment.created_at, ascending=not newest_first)
            .order_by(Deployment._meta.primary_key, ascending=not newest_first)
            .limit(limit)
            .offset(offset)
        )
        if not rows:
            return []
        ids = [str(row["id"]) for row in rows]
        slugs = {str(row["project.slug"]) for row in rows}
        aliases = await self._aliases(ids)
        production_since = await self._production_since(slugs)
        return [self._view(row, aliases, production_since) for row in rows]

    async def _aliases(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """The URLs pointing at each deployment: its labels', each followed by the custom
        domains that serve that label."""
        found: dict[str, list[str]] = {deployment_id: [] for deployment_id in ids}
        rows = await (
            Alias.select(Alias.hostname, Alias.project, Alias.deployment)
            .where(Alias.deployment.is_in(list(ids)))
            .order_by(Alias.hostname)
        )
        domains = await self._domains({int(row["project"]) for row in rows})
        for row in rows:
            urls = found[str(row["deployment"])]
            urls.append(self.settings.deployment_url(row["hostname"]))
            urls.extend(domains.get((int(row["project"]), row["hostname"]), ()))
        return found

    async def _domains(self, project_ids: set[int]) -> dict[tuple[int, str], list[str]]:
        """The URLs of the verified custom domains serving each (project, label): a wildcard
        names no one address, and a redirecting domain serves nothing itself."""
        if not project_ids:
            return {}
        rows = await (
            Domain.select(Domain.name, Domain.project, Domain.project.slug, Domain.git_branch)
            .where(
                Domain.project.is_in(list(project_ids))
                & Domain.verified_at.is_not_null()
                & Domain.redirect_to.is_null()
                & Domain.name.not_like("*.%")
            )
            .order_by(Domain.name)
        )
        found: dict[tuple[int, str], list[str]] = {}
        for row in rows:
            slug, branch = str(row["project.slug"]), row["git_branch"]
            label = (
                hostnames.production_label(slug)
                if branch is None
                else hostnames.branch_label(slug, branch)
            )
            found.setdefault((int(row["project"]), label), []).append(f"https://{row['name']}")
        return found

    async def _production_since(self, slugs: set[str]) -> dict[str, datetime]:
        """When what each project's production serves was made (for Promote or Rollback)."""
        labels = {hostnames.production_label(slug): slug for slug in slugs}
        rows = await Alias.select(Alias.hostname, Alias.deployment.created_at).where(
            Alias.hostname.is_in(list(labels))
        )
        return {labels[row["hostname"]]: row["deployment.created_at"] for row in rows}

    def _view(
        self,
        row: dict[str, Any],
        aliases: dict[str, list[str]],
        production_since: dict[str, datetime],
    ) -> DeploymentView:
        deployment_id, slug = str(row["id"]), str(row["project.slug"])
        since = production_since.get(slug)
        branch = row["branch"]
        url = self.settings.deployment_url
        return DeploymentView(
            id=deployment_id,
            project_id=int(row["project"]),
            slug=slug,
            repository=row["project.github_repository"],
            repository_id=(
                None
                if row["project.github_repository_id"] is None
                else int(row["project.github_repository_id"])
            ),
            state=DeploymentState(row["state"]),
            target=Target(row["target"]),
            ref=str(row["git_ref"]),
            sha=str(row["sha"]),
            branch=branch,
            pr_number=row["pr_number"],
            commit_message=str(row["commit_message"] or ""),
            created_at=row["created_at"],
            started_at=row["started_at"],
            ready_at=row["ready_at"],
            finished_at=row["finished_at"],
            error=row["error"],
            error_code=None if row["error_code"] is None else ErrorCode(row["error_code"]),
            retired=bool(row["retired"]),
            github_deployment_id=row["github_deployment_id"],
            url=url(hostnames.deployment_label(slug, deployment_id)),
            log_url=f"{self.settings.public_url}/deployments/{deployment_id}",
            alias_urls=tuple(aliases[deployment_id]),
            production_url=url(hostnames.production_label(slug)),
            branch_url=None if branch is None else url(hostnames.branch_label(slug, branch)),
            older_than_production=since is not None and row["created_at"] < since,
            github_error=row["report_error"],
            github_refused=row["report_failed_at"] is not None,
            config=stored(row["config"]),
            pruned_at=row["pruned_at"],
        )
