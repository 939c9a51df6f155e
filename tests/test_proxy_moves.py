"""The proxy end to end when an alias moves or goes: noticed by the version check or over Redis.

Without Redis each proxy checks the alias table's version every `poll_interval` (half a
second): the tests move the proxies' clock by that much instead of sleeping. With Redis the
proxy stops polling, so only the announcement (on the test's own channel) can tell it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from app import database
from app.aliases import AliasAnnouncer, announcer
from app.projects.access import Access
from app.projects.envvars import Sealer
from app.projects.service import ProjectService
from app.settings import Settings
from app.tables import Alias, User
from proxy.asgi import Proxy, running
from tests.support.api import Client, OfflineResolver
from tests.support.lookup import FakeClock
from tests.support.proxy import INDEX, OTHER, Served, now, seed
from tests.support.services import redis_url
from tests.support.waiting import eventually_async

HOST = "web.localhost:8080"
WITHIN_S = 1.0
"""A move is served within a second: the poll interval, then one version query."""

pytestmark = pytest.mark.anyio

OTHER_INDEX = b"<h1>Other</h1>"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def on_clock(proxy: Proxy, clock: FakeClock) -> Served:
    """Serve `proxy` with its alias lookup on `clock` (set before its first request)."""
    proxy.lookup._clock = clock
    return Served(proxy)


def next_version_check(clock: FakeClock, served: Served) -> None:
    """Move the clock to when the proxy checks the alias table's version again."""
    poll = served.proxy.lookup.poll_interval
    assert poll is not None
    assert 0 < poll < 1, "a moved alias is noticed within a second"
    clock.now += poll


@pytest.fixture
async def served(proxy_settings: Settings, clock: FakeClock) -> AsyncIterator[Served]:
    await seed(proxy_settings)
    async with running(proxy_settings) as proxy:
        served = on_clock(proxy, clock)
        yield served
        await served.http.aclose()


async def test_a_moved_alias_is_served_within_a_second(
    served: Served, proxy_settings: Settings, clock: FakeClock
) -> None:
    assert (await served.get("/")).content == INDEX
    async with running(proxy_settings) as second:
        other = on_clock(second, clock)
        assert (await other.get("/")).content == INDEX

        await Alias.update({Alias.deployment: OTHER, Alias.updated_at: now()}).where(
            Alias.hostname == "web"
        )
        assert (await served.get("/")).content == INDEX  # the version was just checked
        next_version_check(clock, served)

        # The check runs beside the requests (the cache answers meanwhile): a query later,
        # well within the second, both serve the moved alias.
        for proxy in (served, other):
            await eventually_async(
                lambda proxy=proxy: _serves(proxy, "/", OTHER_INDEX), within=WITHIN_S
            )
        await other.http.aclose()


async def _serves(served: Served, path: str, body: bytes, host: str = HOST) -> bool:
    return bool((await served.get(path, host=host)).content == body)


async def delete_web(served: Served, owner_id: int, announce: AliasAnnouncer) -> None:
    """Delete project `web` as the API does, announcing the aliases it drops."""
    settings = served.proxy.settings
    engine = database.make_engine(settings.database)
    projects = ProjectService(
        settings,
        engine,
        Sealer(settings.require_secret_keys()),
        served.proxy.storage,
        announce,
        Access(),
    )
    await projects.delete(owner_id, "web")


async def test_a_deleted_project_is_no_longer_served_within_a_second(
    served: Served, clock: FakeClock
) -> None:
    """Deleting a project cascades to its aliases; the version poll notices the count drop."""
    assert (await served.get("/")).content == INDEX
    assert (await served.get("/", host="www.web.dev")).content == INDEX
    owner = await User.select(User._meta.primary_key).first()
    assert owner is not None

    await delete_web(served, int(owner["id"]), announcer(None))
    next_version_check(clock, served)

    for host in ("web.localhost:8080", "www.web.dev"):

        async def gone(host: str = host) -> bool:
            response = await served.get("/", host=host)
            return response.status_code == 404 and "No deployment here" in response.text

        await eventually_async(gone, within=WITHIN_S)
    assert await Alias.count() == 0


# --- with Redis ---------------------------------------------------------------------------


@pytest.fixture
async def redis_served(
    settings: Settings, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[Served, Redis]]:
    """A proxy listening for alias announcements, and a Redis client to announce with."""
    with_redis = make_settings(
        SCALEMESH_DATABASE_URL=settings.database.url.reveal(), SCALEMESH_REDIS_URL=redis_url()
    )
    await seed(with_redis)
    redis = Redis.from_url(redis_url())
    async with running(with_redis) as proxy:
        served = Served(proxy)
        yield served, redis
        await served.http.aclose()
    await redis.aclose()


async def serves(served: Served, host: str, status: int, content: bytes | None = None) -> None:
    """Wait until `host` answers `status` (and `content`); nothing but an announcement can
    change the answer, since the proxy does not poll while it hears Redis."""

    async def answered() -> bool:
        response = await served.get("/", host=host)
        return response.status_code == status and content in (None, response.content)

    await eventually_async(answered, what=f"{host} answering {status}")


@pytest.mark.redis
async def test_with_redis_an_announced_move_is_served_at_once(
    redis_served: tuple[Served, Redis], alias_channel: str
) -> None:
    served, redis = redis_served
    assert (await served.get("/")).content == INDEX
    assert served.proxy.lookup.stats.version_checks == 0, "pushes live: no polling"
    await Alias.update({Alias.deployment: OTHER, Alias.updated_at: now()}).where(
        Alias.hostname == "web"
    )

    await announcer(redis, alias_channel)(["web"])

    await serves(served, "web.localhost:8080", 200, OTHER_INDEX)
    assert served.proxy.lookup.stats.version_checks == 0
    await announcer(None, alias_channel)(["web"])  # without Redis there is nobody to tell


@pytest.mark.redis
async def test_with_redis_a_deleted_project_is_dropped_once_announced(
    redis_served: tuple[Served, Redis], alias_channel: str
) -> None:
    """While pushes arrive the proxy does not poll: the API must announce the deleted aliases."""
    served, redis = redis_served
    assert (await served.get("/")).content == INDEX
    assert (await served.get("/", host="www.web.dev")).content == INDEX
    owner = await User.select(User._meta.primary_key).first()
    assert owner is not None

    await delete_web(served, int(owner["id"]), announcer(redis, alias_channel))

    await serves(served, "web.localhost:8080", 404)
    await serves(served, "www.web.dev", 404)
    assert served.proxy.lookup.stats.version_checks == 0


@pytest.mark.redis
def test_with_redis_the_api_announces_on_the_channel_of_its_settings(
    make_settings: Callable[..., Settings], database_url: str, alias_channel: str
) -> None:
    from app.asgi import create_app

    settings = make_settings(SCALEMESH_DATABASE_URL=database_url, SCALEMESH_REDIS_URL=redis_url())
    assert settings.alias_channel == alias_channel
    app = create_app(settings, ref_resolver=OfflineResolver(), reconcile=False)
    listener = Redis.from_url(redis_url())

    async def heard_once_subscribed() -> bool:
        await pubsub.subscribe(alias_channel)
        return await pubsub.get_message(timeout=5) is not None  # the subscribe confirmation

    with Client(app) as client:
        pubsub = listener.pubsub()
        assert client.run(heard_once_subscribed)
        client.run(lambda: client.app.state.services.announce(["Web", "www.web.dev"]))
        message = client.run(lambda: pubsub.get_message(timeout=5))
        client.run(pubsub.aclose)
        client.run(listener.aclose)

    assert message is not None
    assert message["channel"] == alias_channel.encode()
    assert message["data"] == b"web\nwww.web.dev"
