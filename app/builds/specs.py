"""Make a deployment's build spec: its commit, the project's settings, the env vars of its
target (and branch), a clone token.

The reconcile loop makes one before it starts a build (so an env var that cannot be opened, or a
private repository without a token, fails the deployment at once with its own code), and the
spec route makes it again when a builder on ECS fetches it: that builder then clones with a
fresh token, and nothing secret waited in the task's overrides.
"""

from __future__ import annotations

import logging

from app.deployments.records import BuildSource
from app.deployments.skips import previous_sha
from app.github.api import GitHubApi, GitHubError
from app.installations.service import covered_id
from app.projects import envvars
from app.projects.envvars import Sealer
from app.settings import Settings
from app.tables import Deployment
from builder.spec import BuildSpec

log = logging.getLogger(__name__)


class CloneTokenUnavailable(RuntimeError):
    """GitHub would not give a token for a private repository, so it cannot be cloned."""


class CloneTokenDelayed(CloneTokenUnavailable):
    """GitHub could not give that token just now (down, rate limited): ask again later."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """Seconds GitHub asked us to wait, when it said."""


class SpecMaker:
    """Builds `BuildSpec`s from the database; raises `SealError` or `CloneTokenUnavailable`
    (`CloneTokenDelayed` when asking again later may get the token)."""

    def __init__(self, settings: Settings, sealer: Sealer, github: GitHubApi | None) -> None:
        self.settings = settings
        self.sealer = sealer
        self.github = github

    async def make(self, deployment_id: str) -> BuildSpec:
        row = await (
            Deployment.select(*BuildSource.COLUMNS)
            .where(Deployment._meta.primary_key == deployment_id)
            .first()
        )
        if row is None:
            raise LookupError(f"there is no deployment {deployment_id}")
        source = BuildSource.of(row)
        git_url, token = await self._clone_from(deployment_id, source)
        # A fork's code never sees the project's secrets (DESIGN §7).
        env = (
            envvars.BuildEnv()
            if source.from_fork
            else await envvars.load(
                self.sealer, source.project_id, source.target, source.branch or ""
            )
        )
        return BuildSpec(
            deployment_id=deployment_id,
            project_id=source.project_id,
            git_url=git_url,
            token=token,
            sha=source.sha,
            git_ref=source.git_ref,
            storage_url=self.settings.storage.url,
            storage_endpoint_url=self.settings.storage.endpoint_url,
            root_directory=source.root_directory,
            install_command=source.install_command,
            build_command=source.build_command,
            output_directory=source.output_directory,
            env=env.values,
            env_scopes=env.scopes,
            timeout=self.settings.build_timeout,
            limits=self.settings.build_limits,
            target=source.target,
            branch=source.branch or "",
            from_fork=source.from_fork,
            production_branch=source.production_branch,
            base_branch=source.base_branch or "",
            clear_cache=source.clear_cache,
            cache_generation=source.cache_generation,
            previous_sha=await previous_sha(source.project_id, source.target, source.branch),
        )

    async def _clone_from(self, deployment_id: str, source: BuildSource) -> tuple[str, str]:
        """Where to clone from, and the repo-scoped read-only token to clone with (or "").

        A token only for a project bound to its repository, by id, while an active installation
        covers that id. Anyone may name a repository the App is installed on: an unbound
        project clones anonymously, as any stranger would (a private repository then fails).
        """
        bound = source.github_repository_id
        found = None if bound is None else await covered_id(bound)
        if found is None:
            if source.github_repository is not None and bound is None:
                log.info(
                    "project not bound to its repository; cloning without a token",
                    extra={"deployment_id": deployment_id, "project_id": source.project_id},
                )
            return source.git_url, ""
        if self.github is None:
            return found.clone_url, ""
        try:
            token = await self.github.repo_token(found.installation_id, found.full_name)
        except GitHubError as exc:
            if found.private:
                message = f"GitHub gave no token to clone the private repository {found.full_name}"
                if exc.permanent:
                    raise CloneTokenUnavailable(f"{message}: {exc}") from exc
                raise CloneTokenDelayed(f"{message} just now: {exc}", exc.retry_after) from exc
            # A public repository clones without one.
            log.warning(
                "no clone token; cloning anonymously",
                extra={"deployment_id": deployment_id, "error": str(exc)},
            )
            return found.clone_url, ""
        return found.clone_url, token
