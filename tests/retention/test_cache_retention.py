"""Build caches in retention: a deleted project's `__cache/<project>/` is swept (named by prefix in
a dry run), and so is another generation's under a live project's id, the live generation's
kept; a torn-down branch's cache goes only when nothing of that branch is live, never the
production branch's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.projects.records import generation
from app.retention.sweeper import cache_owner, owner, sweep
from app.retention.teardown import Doomed, abandoned_caches, prune
from app.settings import Settings
from app.storage.choice import storage_from_settings
from app.tables import Deployment, Project
from builder.cache_keys import cache_key
from tests.support.lookup import World

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_keys_that_name_a_projects_build_cache() -> None:
    assert cache_owner("__cache/7/0a1b.tar.zst") == 7
    assert cache_owner("__cache/web/0a1b.tar.zst") is None
    assert cache_owner("__cache/²/0a1b.tar.zst") is None  # a digit to isdigit, not to int
    assert cache_owner("__cache/7") is None
    assert cache_owner("__outputs/7/x/index.html") is None
    assert owner("__outputs/²/x/index.html") is None


async def test_a_deleted_projects_caches_are_swept_and_a_live_ones_kept(
    world: World, settings: Settings
) -> None:
    storage = storage_from_settings(settings.storage)
    gone = await world.project("gone")
    made = await Project.select(Project.created_at).where(Project.id == world.project_id)
    live = generation(made[0]["created_at"])
    live_keys = [cache_key(world.project_id, branch, live) for branch in ("main", "feature/x")]
    live_keys.append(cache_key(world.project_id, "main"))  # from before generations: its own
    earlier = cache_key(world.project_id, "main", "1000")  # a deleted project's, same id
    gone_keys = [cache_key(gone, branch, "2000") for branch in ("main", "fix")]
    odd = ["__cache/web/a.tar.zst", "__cache/²/a.tar.zst", "__outputs/²/x/index.html"]
    too_large = "__cache/99999999999/a.tar.zst"  # no project has such an id
    for key in [*live_keys, earlier, *gone_keys, *odd, too_large]:
        await storage.put(key, b"z")
    await Project.delete().where(Project._meta.primary_key == gone)

    dry = await sweep(storage, dry_run=True)
    found = await sweep(storage)

    assert sorted(dry.orphans) == sorted([earlier, *gone_keys, too_large])
    assert dry.orphan_prefixes == tuple(
        sorted(
            [f"__cache/{world.project_id}/1000/", f"__cache/{gone}/2000/", "__cache/99999999999/"]
        )
    )
    assert sorted(found.orphans) == sorted(dry.orphans)
    assert sorted(await storage.list("")) == sorted([*live_keys, *odd])


async def test_a_branch_loses_its_cache_once_nothing_of_it_is_live(
    world: World, settings: Settings
) -> None:
    storage = storage_from_settings(settings.storage)
    project = world.project_id
    made = datetime(2026, 12, 1, 9, 30, 0, 123456, tzinfo=UTC)
    live = generation(made)
    doomed = []
    for branch, retired in (("gone", True), ("back", True), ("main", True), (None, True)):
        deployment = await world.deployment(branch=branch, retired=retired)
        doomed.append(Doomed(deployment, project, "shop", branch, "main", made))
    await world.deployment(branch="back")  # pushed again after it was deleted: live
    for branch in ("gone", "back", "main"):
        await storage.put(cache_key(project, branch, live), b"z")
    unknown = Doomed(doomed[0].id, project, "shop", "gone", "main")  # no generation known

    assert live == "1796117400123456"
    assert await abandoned_caches(doomed) == [cache_key(project, "gone", live)]
    assert await abandoned_caches([doomed[2], doomed[3]]) == []
    assert await abandoned_caches([unknown]) == [cache_key(project, "gone")]

    assert await prune(storage, announced, doomed, datetime.now(UTC)) == 4

    assert sorted(await storage.list(f"__cache/{project}/")) == sorted(
        [cache_key(project, "back", live), cache_key(project, "main", live)]
    )
    left = await Deployment.select(Deployment.branch).where(Deployment.pruned_at.is_null())
    assert [row["branch"] for row in left] == ["back"]


async def announced(hostnames: list[str]) -> None:
    return None
