"""Who may see and change what: the one place projects and deployments are scoped to a user.

A user sees the projects they own, and their deployments. Anyone else asking for one gets the
same answer as for a missing one, so the slugs of other users' projects are not revealed.
Someone who may see a project but not do what they ask gets `permission_denied`.
"""

from __future__ import annotations

from enum import IntEnum

from piccolo.columns.combination import Where

from app.errors import ErrorCode, UserError
from app.projects.records import ProjectRecord
from app.tables import Deployment, Project


class Role(IntEnum):
    """What a user may do with a project; each role may do all the lower ones may."""

    NONE = 0
    PULL = 1
    """See the project, its deployments, logs and previews."""
    PUSH = 2
    """Also deploy, cancel, promote and roll back, and write env vars."""
    ADMIN = 3
    """Also change settings and delete the project."""


def visible_projects(user_id: int) -> Where:
    """The projects `user_id` may see, as a query condition."""
    return Project.owner == user_id


def visible_deployments(user_id: int) -> Where:
    """The deployments `user_id` may see, as a query condition."""
    return Deployment.project.owner == user_id


async def project_for(user_id: int, slug: str, need: Role = Role.PULL) -> ProjectRecord:
    """The project named `slug` if the user may do what `need` allows with it; else
    `project_not_found` (may not see it) or `permission_denied` (may see it, not act)."""
    row = await (
        Project.select(*ProjectRecord.COLUMNS)
        .where((Project.slug == slug) & visible_projects(user_id))
        .first()
    )
    if row is None:
        raise UserError(ErrorCode.PROJECT_NOT_FOUND, f"You have no project {slug!r}.")
    return ProjectRecord.of(row)
