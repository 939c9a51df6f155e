"""`Access` on its own: the role cache lets go of expired entries, GitHub failing to hand out
a token is `github_unavailable`, and a project id nobody has is not found (for deployments: no
role)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from app.deployments.service import DeploymentService
from app.deployments.views import DeploymentView
from app.errors import ErrorCode, UserError
from app.github.api import GitHubError
from app.github.oauth_api import GitHubUsersApi, Permission, RepositoryAccess
from app.projects.access import Access, Role
from app.projects.service import ProjectService
from app.tables import Project
from tests.support.lookup import World

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


class Tokens:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    async def token_for(self, user_id: int) -> str | None:
        if self.fail:
            raise GitHubError("GitHub answered 502")
        return f"token-{user_id}"


class Repositories:
    def __init__(self) -> None:
        self.asked: list[tuple[str, int | str]] = []

    async def repository(self, token: str, repository: int | str) -> RepositoryAccess | None:
        self.asked.append((token, repository))
        return RepositoryAccess(int(repository), "acme/site", False, Permission.PUSH)


async def test_the_cache_lets_go_of_expired_roles_once_it_grows(anyio_backend: str) -> None:
    now = [0.0]
    github = Repositories()
    access = Access(Tokens(), cast(GitHubUsersApi, github), ttl=60, clock=lambda: now[0])
    for user in range(10_000):
        assert await access.repository_role(user, 7) is Role.PUSH
    assert len(access._cache) == 10_000
    now[0] = 61.0  # every role so far has expired; the next one over the bound clears them
    assert await access.repository_role(10_000, 7) is Role.PUSH
    assert list(access._cache) == [(10_000, 7)]
    # An expired role is asked of GitHub again; a fresh one is not.
    asked = len(github.asked)
    assert await access.repository_role(0, 7) is Role.PUSH
    assert await access.repository_role(10_000, 7) is Role.PUSH
    assert github.asked[asked:] == [("token-0", 7)]


async def test_github_failing_to_hand_out_a_token_is_unavailable(anyio_backend: str) -> None:
    github = Repositories()
    access = Access(Tokens(fail=True), cast(GitHubUsersApi, github))
    with pytest.raises(UserError) as raised:
        await access.repository_role(1, 7)
    assert raised.value.code is ErrorCode.GITHUB_UNAVAILABLE
    assert github.asked == []
    assert access._cache == {}


async def test_without_github_no_repository_is_seen(anyio_backend: str) -> None:
    assert await Access(Tokens()).repository("token-1", "acme/site") is None


async def test_an_unknown_project_id_is_not_found_and_gives_no_role(
    world: World, anyio_backend: str
) -> None:
    access = Access()
    with pytest.raises(UserError) as raised:
        await access.project_by_id(1, world.project_id + 1000)
    assert raised.value.code is ErrorCode.PROJECT_NOT_FOUND


async def test_a_deployment_of_a_project_one_may_not_see_gives_no_role(
    world: World, anyio_backend: str
) -> None:
    owner = await Project.select(Project.owner).where(Project.id == world.project_id).first()
    assert owner is not None
    access = Access()
    service = DeploymentService(*cast(list[Any], [None] * 7), access=access)
    view = cast(DeploymentView, _View(world.project_id))
    assert await service.role(owner["owner"], view) is Role.ADMIN
    assert await service.role(owner["owner"] + 1, view) is Role.NONE


async def test_a_project_deleted_meanwhile_is_not_found_on_rereading(
    world: World, anyio_backend: str
) -> None:
    service = ProjectService(*cast(list[Any], [None] * 5), access=Access())
    await Project.delete().where(Project.id == world.project_id)
    with pytest.raises(UserError) as raised:
        await service._reread(1, world.project_id)
    assert raised.value.code is ErrorCode.PROJECT_NOT_FOUND
    assert "deleted meanwhile" in raised.value.detail


class _View:
    def __init__(self, project_id: int) -> None:
        self.project_id = project_id
