"""Which projects a GitHub repository builds: those bound to its id, followed through renames.

A project is bound when a GitHub user with push access on the repository created or re-linked it
(`Project.github_repository_id`). Only bound projects are built by pushes and pull requests, get
an installation token, and are reported on GitHub: a name is not proof of anything, since anyone
can type `owner/name`, and GitHub reuses a name after a rename or a deletion. The id stays.
"""

from __future__ import annotations

import logging
from typing import Any

from piccolo.columns import Column

from app.projects.records import ProjectRecord
from app.tables import Project

log = logging.getLogger(__name__)


async def bound_projects(repository_id: int) -> list[ProjectRecord]:
    """The projects bound to the GitHub repository with this id, whatever it is called now."""
    rows = await (
        Project.select(*ProjectRecord.COLUMNS)
        .where(Project.github_repository_id == repository_id)
        .order_by(Project._meta.primary_key)
    )
    return [ProjectRecord.of(row) for row in rows]


def _renamed_url(git_url: str, old: str, new: str) -> str:
    """The clone URL `<web>/<old>.git` under the new name; any other URL as it was."""
    suffix = f"/{old}.git"
    if git_url.lower().endswith(suffix.lower()):
        return f"{git_url[: -len(suffix)]}/{new}.git"
    return git_url


async def follow_rename(repository_id: int, full_name: str) -> int:
    """A delivery shows the repository as `full_name`: bound projects that knew it by another
    name (renamed, transferred, or a change of case) take the new one. Returns how many did."""
    renamed = 0
    for project in await bound_projects(repository_id):
        old = project.github_repository
        if old == full_name:
            continue
        changes: dict[Column | str, Any] = {Project.github_repository: full_name}
        if old is not None:
            changes[Project.git_url] = _renamed_url(project.git_url, old, full_name)
        # Only if still bound to this repository, under the name read.
        await Project.update(changes).where(
            (Project._meta.primary_key == project.id)
            & (Project.github_repository_id == repository_id)
        )
        log.info(
            "repository renamed",
            extra={"project": project.slug, "repository": full_name, "previous_name": old},
        )
        renamed += 1
    return renamed
