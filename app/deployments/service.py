"""Deployments as users act on them: deploy a ref, read them, cancel, promote, read logs.

Every call is checked against the user's role on the deployment's project
(`app.projects.access`): reading needs pull, deploying, cancelling and promoting need push. A
deployment the user may not see answers as a missing one does. Inputs are typed values, answers
`DeploymentView`s, refusals `UserError`s.
"""

from __future__ import annotations

import uuid

from app.aliases import AliasAnnouncer
from app.database import AnyEngine
from app.deployments import pinning
from app.deployments.diffs import ProductionDiff, ProductionDiffs
from app.deployments.lifecycle import UNFINISHED, DeploymentState
from app.deployments.queue import queue_commit
from app.deployments.transitions import move
from app.deployments.views import DeploymentView, DeploymentViews
from app.errors import ErrorCode, UserError
from app.github.api import GitHubApi, GitHubError
from app.installations.service import covered, covered_id
from app.logs.archive import read_log
from app.logs.bus import LogBus
from app.pipeline import Pipeline
from app.projects.access import Access, Role
from app.projects.records import ProjectRecord
from app.refs import GitUnavailable, RefError, RefResolver, ResolvedRef, resolve_on_github
from app.storage import Storage
from app.tables import Deployment
from builder.events import LogEvent


class DeploymentService:
    def __init__(
        self,
        engine: AnyEngine,
        views: DeploymentViews,
        resolver: RefResolver,
        pipeline: Pipeline,
        announce: AliasAnnouncer,
        bus: LogBus,
        storage: Storage,
        access: Access,
        github: GitHubApi | None = None,
    ) -> None:
        self.access = access
        self.github = github
        self.engine = engine
        self.views = views
        self.resolver = resolver
        self.pipeline = pipeline
        self.announce = announce
        self.bus = bus
        self.storage = storage
        self.diffs = ProductionDiffs(storage)

    async def deploy(
        self, user_id: int, slug: str, ref: str | None, *, clear_cache: bool = False
    ) -> DeploymentView:
        """Queue a build of the project at `ref` (default: its production branch); needs push,
        checked afresh (within the access cache's minute) for a bound project. `clear_cache`:
        build without restoring the branch's build cache (a fresh one is saved)."""
        project = await self.access.project_for(user_id, slug, Role.PUSH)
        await _refuse_unbound_on_the_app(project)
        wanted = (ref or "").strip() or project.production_branch
        try:
            resolved = await self._resolve(project, wanted)
        except RefError as exc:
            raise UserError(ErrorCode.UNKNOWN_REF, str(exc)) from None
        except GitUnavailable as exc:
            raise UserError(ErrorCode.GIT_UNAVAILABLE, str(exc)) from None
        except GitHubError as exc:
            raise UserError(
                ErrorCode.GITHUB_UNAVAILABLE,
                f"GitHub could not say what {wanted!r} is in {project.github_repository}; "
                "try again shortly.",
            ) from exc
        deployment_id = await queue_commit(
            self.engine,
            project,
            sha=resolved.sha,
            ref=resolved.ref,
            branch=resolved.branch,
            clear_cache=clear_cache,
        )
        self.pipeline.wake()
        return await self.get(user_id, deployment_id)

    async def redeploy_without_cache(self, user_id: int, deployment_id: str) -> DeploymentView:
        """Build the deployment's commit on its branch again, without restoring the build cache
        (a fresh one is saved); needs push. A fork's or a tag's deployment has no branch cache."""
        shown, project = await self._with_project(user_id, deployment_id, Role.PUSH)
        if shown.branch is None:
            raise UserError(
                ErrorCode.CACHE_REDEPLOY_NO_BRANCH,
                "Only a branch's deployment can be redeployed without cache; this one was built "
                f"from {shown.ref!r}.",
            )
        await _refuse_unbound_on_the_app(project)
        deployment_id = await queue_commit(
            self.engine,
            project,
            sha=shown.sha,
            ref=shown.ref,
            branch=shown.branch,
            message=shown.commit_message,
            clear_cache=True,
        )
        self.pipeline.wake()
        return await self.get(user_id, deployment_id)

    async def _resolve(self, project: ProjectRecord, wanted: str) -> ResolvedRef:
        """Through GitHub's API for a project bound to a repository the App covers (no `git`
        needed), else with `git ls-remote`."""
        github, bound = self.github, project.github_repository_id
        covering = None if github is None or bound is None else await covered_id(bound)
        if github is None or covering is None:
            return await self.resolver.resolve(project.git_url, wanted)
        return await resolve_on_github(github, covering.installation_id, covering.full_name, wanted)

    async def get(self, user_id: int, deployment_id: str, need: Role = Role.PULL) -> DeploymentView:
        """The deployment, if the user's role on its project allows `need`."""
        return (await self._with_project(user_id, deployment_id, need))[0]

    async def _with_project(
        self, user_id: int, deployment_id: str, need: Role
    ) -> tuple[DeploymentView, ProjectRecord]:
        """The deployment and its project (read once), if the user's role on it allows `need`."""
        found = await self.views.one(Deployment._meta.primary_key == _valid_id(deployment_id))
        if found is None:
            raise _not_found(deployment_id)
        try:
            project = await self.access.project_by_id(user_id, found.project_id, need)
        except UserError as exc:
            if exc.code is ErrorCode.PROJECT_NOT_FOUND:
                raise _not_found(deployment_id) from None
            raise
        return found, project

    async def role(self, user_id: int, view: DeploymentView) -> Role:
        """The user's role on the deployment's project (for what a page offers)."""
        try:
            project = await self.access.project_by_id(user_id, view.project_id)
        except UserError:
            return Role.NONE
        return await self.access.role(user_id, project)

    async def list_for(
        self, user_id: int, slug: str, *, limit: int, offset: int = 0
    ) -> list[DeploymentView]:
        """The project's deployments, newest first."""
        project = await self.access.project_for(user_id, slug)
        return await self.of_project(project, limit=limit, offset=offset)

    async def of_project(
        self, project: ProjectRecord, *, limit: int, offset: int = 0
    ) -> list[DeploymentView]:
        """The deployments of a project the caller was given through `projects.access`."""
        return await self.views.find(Deployment.project == project.id, limit=limit, offset=offset)

    async def cancel(self, user_id: int, deployment_id: str) -> DeploymentView:
        shown = await self.get(user_id, deployment_id, Role.PUSH)
        if not await move(
            shown.id,
            UNFINISHED,
            DeploymentState.CANCELLED,
            error="cancelled",
            error_code=ErrorCode.CANCELLED,
        ):
            current = await self.get(user_id, deployment_id)
            raise UserError(
                ErrorCode.NOT_CANCELLABLE,
                f"The deployment is already {current.state}; there is nothing to cancel.",
            )
        await self.pipeline.finish(shown.id)
        return await self.get(user_id, deployment_id)

    async def promote(self, user_id: int, deployment_id: str) -> DeploymentView:
        """Serve a ready deployment in production; a rollback (a newer ready production
        deployment exists) pins production there (`app.deployments.pinning`)."""
        shown = await self.get(user_id, deployment_id, Role.PUSH)
        if shown.state is not DeploymentState.READY:
            raise UserError(
                ErrorCode.NOT_PROMOTABLE,
                f"Only a ready deployment can be promoted; this one is {shown.state}.",
            )
        await pinning.promote(
            self.engine,
            self.announce,
            shown.slug,
            shown.project_id,
            shown.id,
            by=user_id,
            report=self._reported,
        )
        return await self.get(user_id, deployment_id)

    async def unpin(self, user_id: int, slug: str) -> DeploymentView | None:
        """Let production follow pushes again: serve the newest ready production deployment
        (None when there is none yet); needs push."""
        project = await self.access.project_for(user_id, slug, Role.PUSH)
        moved = await pinning.promote(
            self.engine, self.announce, project.slug, project.id, None, report=self._reported
        )
        return None if moved is None else await self.get(user_id, moved.deployment_id)

    @property
    def _reported(self) -> bool:
        """Promotes are recorded for GitHub (`app.reporting.promotions`) while it is configured:
        its reporter tells it. Without GitHub, nothing would ever take the records."""
        return self.github is not None

    async def diff(self, user_id: int, deployment_id: str) -> ProductionDiff:
        """What the deployment changed against production (`app.deployments.diffs`)."""
        return await self.diffs.against_production(await self.get(user_id, deployment_id))

    async def logs(self, user_id: int, deployment_id: str, since: int = 0) -> list[LogEvent]:
        """The build log so far: live from the bus, else from its archive."""
        shown = await self.get(user_id, deployment_id)
        return await read_log(self.bus, self.storage, shown.id, since)


def _not_found(deployment_id: str) -> UserError:
    return UserError(ErrorCode.DEPLOYMENT_NOT_FOUND, f"You have no deployment {deployment_id!r}.")


def _valid_id(deployment_id: str) -> str:
    try:
        return str(uuid.UUID(deployment_id))
    except ValueError:
        raise UserError(
            ErrorCode.DEPLOYMENT_NOT_FOUND, f"There is no deployment {deployment_id!r}."
        ) from None


async def _refuse_unbound_on_the_app(project: ProjectRecord) -> None:
    """A repository the App is installed on is built only for projects bound to it by someone
    with push access, whoever asks: the others' would clone what its owners did not share."""
    name = project.github_repository
    if project.github_repository_id is None and name and await covered(name) is not None:
        raise UserError(
            ErrorCode.GITHUB_LINK_REQUIRED,
            f"{name} is on the GitHub App: someone with push access to it must sign in with "
            "GitHub and link this project before it can be deployed.",
        )
