"""Deployments as the build machinery reads them: small frozen records, each read in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.deployments.lifecycle import DeploymentState, Target
from app.errors import ErrorCode
from app.projects.records import generation
from app.tables import Deployment


@dataclass(frozen=True, slots=True)
class BuildSource:
    """What a build of this deployment needs to know: the commit and the project's settings."""

    project_id: int
    sha: str
    git_ref: str
    branch: str | None
    target: str
    from_fork: bool
    git_url: str
    github_repository: str | None
    github_repository_id: int | None
    """GitHub's id of the repository the project is bound to; None when it is not bound."""
    root_directory: str | None
    install_command: str | None
    build_command: str | None
    output_directory: str | None
    production_branch: str
    clear_cache: bool
    base_branch: str | None
    """The branch its pull request merges into; None: built for no pull request."""
    project_created: datetime
    """When the project was made: its build caches are kept under it (`cache_generation`)."""

    COLUMNS = (
        Deployment.project,
        Deployment.sha,
        Deployment.git_ref,
        Deployment.branch,
        Deployment.target,
        Deployment.from_fork,
        Deployment.project.git_url,
        Deployment.project.github_repository,
        Deployment.project.github_repository_id,
        Deployment.project.root_directory,
        Deployment.project.install_command,
        Deployment.project.build_command,
        Deployment.project.output_directory,
        Deployment.project.production_branch,
        Deployment.clear_cache,
        Deployment.base_branch,
        Deployment.project.created_at,
    )

    @classmethod
    def of(cls, row: dict[str, Any]) -> BuildSource:
        return cls(
            project_id=int(row["project"]),
            sha=str(row["sha"]),
            git_ref=str(row["git_ref"]),
            branch=row["branch"],
            target=str(row["target"]),
            from_fork=bool(row["from_fork"]),
            git_url=str(row["project.git_url"]),
            github_repository=row["project.github_repository"],
            github_repository_id=(
                None
                if row["project.github_repository_id"] is None
                else int(row["project.github_repository_id"])
            ),
            root_directory=row["project.root_directory"],
            install_command=row["project.install_command"],
            build_command=row["project.build_command"],
            output_directory=row["project.output_directory"],
            production_branch=str(row["project.production_branch"]),
            clear_cache=bool(row["clear_cache"]),
            base_branch=row["base_branch"],
            project_created=row["project.created_at"],
        )

    @property
    def cache_generation(self) -> str:
        """The project's life its build caches belong to (`app.projects.records.generation`)."""
        return generation(self.project_created)


@dataclass(frozen=True, slots=True)
class RunningBuild:
    """A `building` deployment, as the reconcile loop polls it."""

    id: str
    project_id: int
    runner_handle: str | None
    started_at: datetime | None
    owner: str | None
    """The replica that started it (`app.replicas`); None for a build started before 0007."""

    COLUMNS = (
        Deployment._meta.primary_key,
        Deployment.project,
        Deployment.runner_handle,
        Deployment.started_at,
        Deployment.runner_owner,
    )

    @classmethod
    def of(cls, row: dict[str, Any]) -> RunningBuild:
        return cls(
            id=str(row["id"]),
            project_id=int(row["project"]),
            runner_handle=row["runner_handle"],
            started_at=row["started_at"],
            owner=row["runner_owner"],
        )


@dataclass(frozen=True, slots=True)
class Ending:
    """A deployment in a final state, as its log is closed."""

    state: DeploymentState
    runner_handle: str | None
    error: str | None
    error_code: ErrorCode | None
    slug: str
    started_at: datetime | None
    runner_owner: str | None
    """The replica that ran its build (`app.replicas`), if one did."""

    COLUMNS = (
        Deployment.state,
        Deployment.runner_handle,
        Deployment.error,
        Deployment.error_code,
        Deployment.project.slug,
        Deployment.started_at,
        Deployment.runner_owner,
    )

    @classmethod
    def of(cls, row: dict[str, Any]) -> Ending:
        code = row["error_code"]
        return cls(
            state=DeploymentState(row["state"]),
            runner_handle=row["runner_handle"],
            error=row["error"],
            error_code=None if code is None else ErrorCode(code),
            slug=str(row["project.slug"]),
            started_at=row["started_at"],
            runner_owner=row["runner_owner"],
        )


@dataclass(frozen=True, slots=True)
class Publishable:
    """What moving a ready deployment's aliases needs."""

    id: str
    project_id: int
    slug: str
    branch: str | None
    target: Target
    created_at: datetime

    COLUMNS = (
        Deployment._meta.primary_key,
        Deployment.project,
        Deployment.project.slug,
        Deployment.branch,
        Deployment.target,
        Deployment.created_at,
    )

    @classmethod
    def of(cls, row: dict[str, Any]) -> Publishable:
        return cls(
            id=str(row["id"]),
            project_id=int(row["project"]),
            slug=str(row["project.slug"]),
            branch=row["branch"],
            target=Target(row["target"]),
            created_at=row["created_at"],
        )


@dataclass(frozen=True, slots=True)
class Linked:
    """A deployment of a commit, and the pull request it is shown on (if any)."""

    id: str
    pr_number: int | None

    COLUMNS = (Deployment._meta.primary_key, Deployment.pr_number)

    @classmethod
    def of(cls, row: dict[str, Any]) -> Linked:
        return cls(id=str(row["id"]), pr_number=row["pr_number"])
