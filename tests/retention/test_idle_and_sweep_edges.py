"""Edges: a config without `ttlDays`; idle previews marked a batch at a time; keys the sweeper
does not own; ids that are not UUIDs; a teardown beside look-alike prefixes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from app.logs.archive import archive_key
from app.retention.idle import retire_idle, ttl_days
from app.retention.sweeper import owner, sweep
from app.retention.teardown import Doomed, prune
from app.settings import Settings
from app.storage.choice import storage_from_settings
from app.tables import Deployment, Project
from builder.spec import output_prefix
from tests.support.lookup import World

pytestmark = pytest.mark.anyio
NOW = datetime(2027, 6, 1, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize(
    ("config", "days"),
    [
        (None, None),
        ("not json", None),
        ({"fields": {}}, None),
        ({"fields": {"previews": {"value": {"ttlDays": True}}}}, None),
        ({"fields": {"previews": {"value": {"ttlDays": 0}}}}, None),
        (json.dumps({"fields": {"previews": {"value": {"ttlDays": 5}}}}), 5),
    ],
)
def test_ttl_days_of_a_stored_config(config: object, days: int | None) -> None:
    assert ttl_days(config) == days


async def test_the_project_setting_marks_idle_previews_a_batch_at_a_time(world: World) -> None:
    await Project.update({Project.preview_ttl_days: 2}).where(Project.id == world.project_id)
    for branch in ("a", "b", "c"):
        await world.deployment(branch=branch, created_at=NOW - timedelta(days=3))
    await world.deployment(branch="fresh", created_at=NOW - timedelta(days=1))

    first = await retire_idle(NOW, 2)
    second = await retire_idle(NOW, 2)
    third = await retire_idle(NOW, 2)

    assert (first, second, third) == (2, 1, 0)
    due = await Deployment.select(Deployment.branch).where(Deployment.teardown_at == NOW)
    assert sorted(row["branch"] for row in due) == ["a", "b", "c"]


def test_keys_the_sweeper_does_not_own() -> None:
    assert owner("__cache/1/main.tar.zst") is None
    assert owner("__logs/odd.txt") is None
    assert owner("__outputs/web/x/index.html") is None
    assert owner("__outputs/1/x/index.html") == (1, "x")


async def test_files_under_a_name_that_is_no_uuid_are_orphans(
    world: World, settings: Settings
) -> None:
    storage = storage_from_settings(settings.storage)
    await storage.put("__outputs/1/not-a-uuid/index.html", b"x")

    found = await sweep(storage, dry_run=True)

    assert found.orphans == ("__outputs/1/not-a-uuid/index.html",)
    assert found.cursor == ""


async def test_a_run_over_keys_that_are_not_orphans_stops_after_its_pages(
    world: World, settings: Settings
) -> None:
    storage = storage_from_settings(settings.storage)
    for n in range(7):
        await storage.put(f"__outputs/web/{n}/index.html", b"x")  # not ours to judge: kept

    found = await sweep(storage, batch=1)
    rest = await sweep(storage, found.cursor, batch=1)

    assert (found.examined, found.cursor) == (5, "__outputs/web/4/index.html")
    assert (rest.examined, rest.cursor) == (2, "")
    assert len(await storage.list("__outputs/")) == 7


async def test_a_teardown_deletes_its_own_prefix_and_nothing_that_looks_like_it(
    world: World, settings: Settings
) -> None:
    storage = storage_from_settings(settings.storage)
    doomed, neighbour = await world.deployment(), await world.deployment()
    project = world.project_id
    own = [output_prefix(project, doomed) + "index.html", archive_key(doomed)]
    kept = [
        output_prefix(project, neighbour) + "index.html",
        # Another project whose id starts with this one's, holding the same deployment id.
        output_prefix(int(f"{project}1"), doomed) + "index.html",
        f"__outputs/{project}/{doomed}-old/index.html",
        f"__outputs/{project}{doomed}/index.html",
        f"__cache/{project}/{doomed}.tar.zst",
        archive_key(neighbour),
    ]
    for key in own + kept:
        await storage.put(key, b"x")

    async def announce(names: list[str]) -> None:
        return None

    pruned = await prune(storage, announce, [Doomed(doomed, project, "shop")], NOW)

    assert pruned == 1
    assert await storage.list("") == sorted(kept)
