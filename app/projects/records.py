"""A project as a frozen record, read from its row in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app.projects.rules import Protection
from app.tables import Project

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def generation(created_at: datetime) -> str:
    """A project's life under its id: its creation, in microseconds. SQLite gives a deleted
    project's id to the next project made; what is named by the id alone (build caches, domain
    proofs) would pass to it, what is named by both never does."""
    return str((created_at - _EPOCH) // timedelta(microseconds=1))


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    id: int
    slug: str
    name: str
    owner_id: int
    github_repository: str | None
    """`owner/name` when the project builds a GitHub repository, else None."""
    github_repository_id: int | None
    """GitHub's id of the repository once bound by a user with push access on it, else None."""
    git_url: str
    production_branch: str
    root_directory: str | None
    install_command: str | None
    build_command: str | None
    output_directory: str | None
    allow_fork_builds: bool
    protection: Protection
    preview_ttl_days: int | None
    """Days a preview may go without a push before it is torn down; None: the file's
    `previews.ttlDays`, else never."""
    created_at: datetime
    updated_at: datetime

    COLUMNS = (
        Project._meta.primary_key,
        Project.slug,
        Project.name,
        Project.owner,
        Project.github_repository,
        Project.github_repository_id,
        Project.git_url,
        Project.production_branch,
        Project.root_directory,
        Project.install_command,
        Project.build_command,
        Project.output_directory,
        Project.allow_fork_builds,
        Project.protection,
        Project.preview_ttl_days,
        Project.created_at,
        Project.updated_at,
    )

    @classmethod
    def of(cls, row: dict[str, Any]) -> ProjectRecord:
        return cls(
            id=int(row["id"]),
            slug=str(row["slug"]),
            name=str(row["name"]),
            owner_id=int(row["owner"]),
            github_repository=row["github_repository"],
            github_repository_id=(
                None if row["github_repository_id"] is None else int(row["github_repository_id"])
            ),
            git_url=str(row["git_url"]),
            production_branch=str(row["production_branch"]),
            root_directory=row["root_directory"],
            install_command=row["install_command"],
            build_command=row["build_command"],
            output_directory=row["output_directory"],
            allow_fork_builds=bool(row["allow_fork_builds"]),
            protection=Protection(row["protection"]),
            preview_ttl_days=row["preview_ttl_days"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    @property
    def generation(self) -> str:
        return generation(self.created_at)

    @property
    def repo(self) -> str:
        """`owner/name` for a GitHub repository, else the git URL."""
        return self.github_repository or self.git_url
