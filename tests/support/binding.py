"""Binding a project to its GitHub repository's id in tests.

Stands in for creating (or re-linking) the project as a GitHub user with push access on the
repository, which is what binds it in the app: tests of pushes, pull requests and reporting need a
bound project, and password users cannot make one through the API.
"""

from __future__ import annotations

from app.tables import Project
from tests.support.api import Client


def bind(client: Client, slug: str, repository_id: int | None) -> None:
    """Set the project's `github_repository_id` (None unbinds it)."""
    rows = client.run(
        lambda: (
            Project.update({Project.github_repository_id: repository_id})
            .where(Project.slug == slug)
            .returning(Project.slug)
        )
    )
    assert rows, f"no project {slug!r}"
