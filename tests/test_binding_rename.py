"""`follow_rename` on its own: a clone URL not of the old name's form stays as it was, and a
bound project that never knew the repository's name takes the name and keeps its URL."""

from __future__ import annotations

import pytest

from app.projects.binding import follow_rename
from app.tables import Project
from tests.support.lookup import World

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


async def _bind(world: World, repository: str | None, git_url: str) -> None:
    await Project.update(
        {
            Project.github_repository_id: 42,
            Project.github_repository: repository,
            Project.git_url: git_url,
        }
    ).where(Project.id == world.project_id)


async def _stored(world: World) -> tuple[str | None, str]:
    row = await (
        Project.select(Project.github_repository, Project.git_url)
        .where(Project.id == world.project_id)
        .first()
    )
    assert row is not None
    return row["github_repository"], row["git_url"]


async def test_a_clone_url_of_another_form_is_kept(world: World, anyio_backend: str) -> None:
    await _bind(world, "acme/site", "https://mirror.example.com/site-mirror.git")
    assert await follow_rename(42, "acme/web") == 1
    assert await _stored(world) == ("acme/web", "https://mirror.example.com/site-mirror.git")


async def test_the_clone_url_follows_the_new_name(world: World, anyio_backend: str) -> None:
    await _bind(world, "acme/site", "https://github.com/Acme/Site.git")
    assert await follow_rename(42, "acme/web") == 1
    assert await _stored(world) == ("acme/web", "https://github.com/acme/web.git")
    assert await follow_rename(42, "acme/web") == 0


async def test_a_project_without_the_name_takes_it_and_keeps_its_url(
    world: World, anyio_backend: str
) -> None:
    await _bind(world, None, "https://example.com/shop.git")
    assert await follow_rename(42, "acme/web") == 1
    assert await _stored(world) == ("acme/web", "https://example.com/shop.git")
