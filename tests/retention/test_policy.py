"""The retention policy with a frozen clock: each class pruned past its age and not before, from
`finished_at` (else `created_at`); the aliased and newest-10-production exceptions; files gone,
rows kept; a second replica finds the chore held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app import hostnames
from app.aliases import AliasAnnouncer
from app.deployments.lifecycle import DeploymentState, Target
from app.logs.archive import archive_key
from app.retention.chore_loop import Retention
from app.settings import Settings
from app.settings_retention import RetentionSettings
from app.storage import Storage, StorageError
from app.storage.choice import storage_from_settings
from app.tables import Alias, Chore, Deployment
from builder.spec import output_prefix
from tests.support.clock import FrozenClock
from tests.support.lookup import World
from tests.support.retention import aged, pruned_ids

pytestmark = pytest.mark.anyio
S = DeploymentState
NOW = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Announced:
    def __init__(self) -> None:
        self.names: list[str] = []

    async def __call__(self, names: list[str]) -> None:
        self.names += names


def retention(storage: Storage, announce: AliasAnnouncer, clock: FrozenClock) -> Retention:
    return Retention(storage, announce, RetentionSettings(), clock=clock)


@pytest.mark.parametrize(
    ("state", "target", "days"),
    [
        (S.CANCELLED, Target.PREVIEW, 30),
        (S.SKIPPED, Target.PRODUCTION, 30),
        (S.FAILED, Target.PREVIEW, 90),
        (S.READY, Target.PREVIEW, 180),
        (S.READY, Target.PRODUCTION, 365),
    ],
)
async def test_each_class_is_pruned_past_its_age_and_not_before(
    world: World, settings: Settings, state: S, target: Target, days: int
) -> None:
    storage = storage_from_settings(settings.storage)
    clock = FrozenClock(NOW)
    young = await aged(
        storage, world.project_id, "shop", NOW, days=days - 1, state=state, target=target
    )
    old = await aged(
        storage, world.project_id, "shop", NOW, days=days + 1, state=state, target=target
    )
    # Made long ago, ended yesterday: its age counts from the end.
    late = await aged(
        storage, world.project_id, "shop", NOW, days=days + 5, state=state, target=target
    )
    await Deployment.update({Deployment.finished_at: NOW - timedelta(days=1)}).where(
        Deployment.id == late
    )
    # Never ended (cancelled while queued): from when it was made.
    never = await aged(
        storage,
        world.project_id,
        "shop",
        NOW,
        days=days + 1,
        state=state,
        target=target,
        finished=False,
    )
    queued = await aged(
        storage, world.project_id, "shop", NOW, days=999, state=S.QUEUED, finished=False
    )
    announced = Announced()
    # The production class keeps the 10 newest: add 10 newer ones, so the old one is not among them.
    if target is Target.PRODUCTION and state is S.READY:
        for _ in range(10):
            await aged(storage, world.project_id, "shop", NOW, days=1, state=S.READY, target=target)

    result = await retention(storage, announced, clock).run()

    assert result is not None
    assert await pruned_ids() == {old, never}
    assert not await storage.list(output_prefix(world.project_id, old))
    assert not await storage.exists(archive_key(old))
    assert await storage.exists(output_prefix(world.project_id, young) + "index.html")
    assert await storage.exists(archive_key(late))
    assert queued not in await pruned_ids()
    # The rows stay, retired (GitHub hears `inactive`), their own labels still theirs (410).
    row = await Deployment.select().where(Deployment.id == old).first()
    assert row is not None
    assert row["retired"]
    assert row["report_pending"]
    assert await Alias.count().where(Alias.deployment == old) == 1
    assert hostnames.deployment_label("shop", old) in announced.names


async def test_aliased_and_the_ten_newest_production_deployments_are_kept(
    world: World, settings: Settings
) -> None:
    storage = storage_from_settings(settings.storage)
    clock = FrozenClock(NOW)
    production = [
        await aged(storage, world.project_id, "shop", NOW, days=400 + i, target=Target.PRODUCTION)
        for i in range(12)
    ]
    old_preview = await aged(storage, world.project_id, "shop", NOW, days=400)
    served_branch = await aged(storage, world.project_id, "shop", NOW, days=400)
    await Alias.insert(
        Alias(hostname="shop-git-main", project=world.project_id, deployment=served_branch)
    )
    # Production's alias points at the oldest: kept though not among the 10 newest.
    await Alias.insert(Alias(hostname="shop", project=world.project_id, deployment=production[-1]))

    await retention(storage, Announced(), clock).run()

    # The 10 newest (the first 10: fewest days old) and the aliased oldest stay.
    assert await pruned_ids() == {production[10], old_preview}


async def test_kept_old_previews_beyond_the_window_hold_no_younger_expired_one_back(
    world: World, settings: Settings
) -> None:
    storage = storage_from_settings(settings.storage)
    batch = 2
    # More served-and-old previews than the old candidate window (batch * 4 + 10) held.
    for i in range(batch * 4 + 12):
        served = await aged(storage, world.project_id, "shop", NOW, days=400 + i)
        await Alias.insert(
            Alias(hostname=f"shop-git-b{i}", project=world.project_id, deployment=served)
        )
    younger = await aged(storage, world.project_id, "shop", NOW, days=200)
    loop = Retention(storage, Announced(), RetentionSettings(), batch=batch, clock=FrozenClock(NOW))

    await loop.run()

    assert await pruned_ids() == {younger}


async def test_kept_old_production_beyond_the_window_holds_no_younger_expired_one_back(
    world: World, settings: Settings
) -> None:
    storage = storage_from_settings(settings.storage)
    batch = 2
    for i in range(batch * 4 + 12):
        served = await aged(
            storage, world.project_id, "shop", NOW, days=500 + i, target=Target.PRODUCTION
        )
        await Alias.insert(
            Alias(hostname=f"www{i}.shop.example", project=world.project_id, deployment=served)
        )
    younger = await aged(storage, world.project_id, "shop", NOW, days=450, target=Target.PRODUCTION)
    # The 10 newest, expired too but kept.
    for i in range(10):
        await aged(storage, world.project_id, "shop", NOW, days=370 + i, target=Target.PRODUCTION)
    loop = Retention(storage, Announced(), RetentionSettings(), batch=batch, clock=FrozenClock(NOW))

    await loop.run()

    assert await pruned_ids() == {younger}


async def test_zero_days_keeps_a_class_for_ever(world: World, settings: Settings) -> None:
    storage = storage_from_settings(settings.storage)
    ancient = await aged(storage, world.project_id, "shop", NOW, days=5000, state=S.FAILED)
    loop = Retention(storage, Announced(), RetentionSettings(errored=None), clock=FrozenClock(NOW))

    await loop.run()

    assert ancient not in await pruned_ids()


async def test_one_replica_at_a_time_runs_the_chore_and_a_storage_error_backs_off(
    world: World, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = storage_from_settings(settings.storage)
    clock = FrozenClock(NOW)
    first, second = retention(storage, Announced(), clock), retention(storage, Announced(), clock)
    old = await aged(storage, world.project_id, "shop", NOW, days=400)

    assert await first.run() is not None
    assert await second.run() is None  # not due again for a minute
    clock.advance(61)

    async def broken(*keys: str) -> None:
        raise StorageError("bucket unreachable")

    monkeypatch.setattr(storage, "delete", broken)
    await aged(storage, world.project_id, "shop", NOW, days=400)
    assert await second.run() is None
    chore = await Chore.select().where(Chore.name == "retention").first()
    assert chore is not None
    assert chore["failures"] == 1
    assert chore["next_run_at"] == clock() + timedelta(seconds=30)
    assert old in await pruned_ids()


async def test_a_run_is_bounded_by_its_batch_and_resumes(world: World, settings: Settings) -> None:
    storage = storage_from_settings(settings.storage)
    clock = FrozenClock(NOW)
    old = [await aged(storage, world.project_id, "shop", NOW, days=400) for _ in range(3)]
    loop = Retention(storage, Announced(), RetentionSettings(), batch=2, clock=clock)

    await loop.run()
    assert len(await pruned_ids()) == 2
    clock.advance(61)
    await loop.run()

    assert await pruned_ids() == set(old)


async def test_kick_runs_beside_the_caller_once_and_a_failure_is_logged(
    world: World,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = storage_from_settings(settings.storage)
    loop = retention(storage, Announced(), FrozenClock(NOW))

    async def broken(now: datetime, batch: int) -> int:
        raise RuntimeError("database went away")

    monkeypatch.setattr("app.retention.idle.retire_idle", broken)
    loop.kick()
    first = loop.running
    loop.kick()  # still running: the same run
    assert loop.running is first
    assert first is not None
    assert await first is None
    assert "retention run failed" in caplog.text
    chore = await Chore.select().where(Chore.name == "retention").first()
    assert chore is not None
    assert chore["failures"] == 1
    await loop.aclose()


async def test_aclose_stops_a_run_under_way(world: World, settings: Settings) -> None:
    import asyncio

    storage = storage_from_settings(settings.storage)
    loop = retention(storage, Announced(), FrozenClock(NOW))
    loop.running = asyncio.create_task(asyncio.sleep(60))  # type: ignore[assignment]

    await loop.aclose()

    assert loop.running.cancelled()
