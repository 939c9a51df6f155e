"""Who may see and change what: the one place projects and deployments are scoped to a user.

A user sees the projects they own, and their deployments. Anyone else asking for one gets the
same answer as for a missing one, so the slugs of other users' projects are not revealed.
"""

from __future__ import annotations

from piccolo.columns.combination import Where

from app.errors import ErrorCode, UserError
from app.projects.records import ProjectRecord
from app.tables import Deployment, Project


def visible_projects(user_id: int) -> Where:
    """The projects `user_id` may see, as a query condition."""
    return Project.owner == user_id


def visible_deployments(user_id: int) -> Where:
    """The deployments `user_id` may see, as a query condition."""
    return Deployment.project.owner == user_id


async def project_for(user_id: int, slug: str) -> ProjectRecord:
    """The user's project named `slug`, else `project_not_found`."""
    row = await (
        Project.select(*ProjectRecord.COLUMNS)
        .where((Project.slug == slug) & visible_projects(user_id))
        .first()
    )
    if row is None:
        raise UserError(ErrorCode.PROJECT_NOT_FOUND, f"You have no project {slug!r}.")
    return ProjectRecord.of(row)
