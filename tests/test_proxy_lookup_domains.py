"""Custom domains in one proxy replica's lookup: verified rows only, wildcards, the label a
domain follows, redirects, what TLS may be issued for, and what drops a cached domain.

Each domain follows an alias label (`app.hostnames.domain_label`), so these tests move the
label with `point_alias`, as publish, promote and rollback do, and never touch the domain.
"""

from __future__ import annotations

import pytest

from app.deployments.publish import point_alias
from app.hostnames import branch_label
from app.preview_tokens import binding
from app.tables import Domain
from proxy.lookup import MISSING, Lookup
from proxy.target import Redirect, Target
from tests.support.lookup import ROOT, FakeClock, World
from tests.support.proxy import now

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def served(lookup: Lookup, host: str) -> str | None:
    """The deployment `host` serves, or None."""
    target = await lookup.resolve(host)
    assert target is None or isinstance(target, Target)
    return None if target is None else target.deployment_id


async def test_a_verified_domain_serves_production_and_binds_its_project(world: World) -> None:
    deployment_id = await world.deployment()
    await point_alias("shop", world.project_id, deployment_id)
    await world.domain("www.shop.io")
    lookup = Lookup(ROOT, poll_interval=None)

    target = await lookup.resolve("www.shop.io:443")
    production = await lookup.resolve("shop.example.test")

    assert isinstance(target, Target)
    assert isinstance(production, Target)
    assert (target.deployment_id, target.prefix) == (production.deployment_id, production.prefix)
    assert target.name == "www.shop.io"
    assert target.binding == binding("www.shop.io", world.project_id) != "www.shop.io"
    assert production.binding == "shop"
    assert await lookup.tls_allowed("www.shop.io")


async def test_pending_unknown_and_reserved_names_serve_nothing(world: World) -> None:
    await point_alias("shop", world.project_id, await world.deployment())
    await world.domain("pending.shop.io", verified=False)
    lookup = Lookup(ROOT, poll_interval=None)

    for host in ("pending.shop.io", "unknown.shop.io"):
        assert await lookup.resolve(host) is None
        assert not await lookup.tls_allowed(host)
    queries = len(world.queries)
    # Never a domain: the root, two labels under it, an address. Refused without a query.
    for host in ("example.test", "a.b.example.test", "10.0.0.1", "bad host", ""):
        assert await lookup.resolve(host) is None
        assert not await lookup.tls_allowed(host)
    assert len(world.queries) == queries


async def test_a_wildcard_covers_one_level_and_its_own_name_wins(world: World) -> None:
    production, staging = await world.deployment(), await world.deployment()
    await point_alias("shop", world.project_id, production)
    await point_alias(branch_label("shop", "staging"), world.project_id, staging)
    await world.domain("*.shop.io")
    await world.domain("staging.shop.io", git_branch="staging")
    lookup = Lookup(ROOT, poll_interval=None)

    assert await served(lookup, "a.shop.io") == production
    assert await served(lookup, "staging.shop.io") == staging
    assert await served(lookup, "b.a.shop.io") is None  # one level only
    assert await served(lookup, "shop.io") is None  # the wildcard is not its parent
    assert await lookup.tls_allowed("a.shop.io")
    assert not await lookup.tls_allowed("b.a.shop.io")
    target = await lookup.resolve("a.shop.io")
    assert isinstance(target, Target)
    assert target.name == "a.shop.io"  # tokens bind the name asked for, not the wildcard


async def test_a_redirecting_domain(world: World) -> None:
    await world.domain("shop.io", redirect_to="www.shop.io")
    lookup = Lookup(ROOT, poll_interval=None)
    assert await lookup.resolve("shop.io") == Redirect("shop.io", "www.shop.io")
    # Verified: a certificate may be had although nothing is deployed behind it.
    assert await lookup.tls_allowed("shop.io")
    # Deleting the project announces its labels: the redirect goes with them.
    lookup.invalidate(["shop"])
    assert lookup.peek("shop.io") is MISSING


async def test_a_verified_domain_with_nothing_deployed_yet(world: World) -> None:
    await world.domain("www.shop.io")
    lookup = Lookup(ROOT, poll_interval=None)
    assert await lookup.resolve("www.shop.io") is None
    assert await lookup.tls_allowed("www.shop.io")
    assert not await lookup.tls_allowed("shop.example.test")  # no alias yet


async def test_a_domain_never_serves_another_projects_label(world: World) -> None:
    """Should a label its project would follow belong to another project, serve nothing."""
    other = await world.project("other")
    await point_alias("shop", other, await world.deployment(project_id=other))
    await world.domain("www.shop.io")
    lookup = Lookup(ROOT, poll_interval=None)
    assert await lookup.resolve("www.shop.io") is None


async def test_a_domain_follows_every_move_of_its_label(world: World) -> None:
    first, second = await world.deployment(), await world.deployment()
    await point_alias("shop", world.project_id, first)
    await world.domain("www.shop.io")
    lookup = Lookup(ROOT, poll_interval=None)
    assert await served(lookup, "www.shop.io") == first

    await point_alias("shop", world.project_id, second)  # a promote
    lookup.invalidate(["shop"])  # what the API announces: the label alone
    assert lookup.peek("www.shop.io") is MISSING
    assert await served(lookup, "www.shop.io") == second

    await point_alias("shop", world.project_id, first)  # a rollback
    lookup.invalidate(["shop"])
    assert await served(lookup, "www.shop.io") == first


async def test_a_cached_domain_costs_no_query_and_its_label_is_shared(world: World) -> None:
    await point_alias("shop", world.project_id, await world.deployment())
    await world.domain("www.shop.io")
    await world.domain("shop.io")
    lookup = Lookup(ROOT, poll_interval=None)
    target = await lookup.resolve("www.shop.io")
    assert lookup.stats.queries == 2  # the domain, then its label

    await lookup.resolve("shop.io")
    assert lookup.stats.queries == 3, "the label's cached answer is reused"
    queries = len(world.queries)
    assert lookup.peek("www.shop.io") is target
    assert await lookup.resolve("www.shop.io") is target
    assert len(world.queries) == queries


async def test_announcing_a_domain_drops_it(world: World) -> None:
    await point_alias("shop", world.project_id, await world.deployment())
    await world.domain("www.shop.io")
    lookup = Lookup(ROOT, poll_interval=None)
    assert await lookup.resolve("www.shop.io") is not None

    await Domain.delete().where(Domain.name == "www.shop.io")
    lookup.invalidate(["www.shop.io"])

    assert await lookup.resolve("www.shop.io") is None
    assert not await lookup.tls_allowed("www.shop.io")


async def test_announcing_a_wildcard_drops_the_names_under_it(world: World) -> None:
    await point_alias("shop", world.project_id, await world.deployment())
    await world.domain("*.shop.io", verified=False)
    lookup = Lookup(ROOT, poll_interval=None)
    assert await lookup.resolve("a.shop.io") is None  # pending: cached as nothing
    assert await lookup.resolve("shop.io") is None
    assert await lookup.resolve("a.b.shop.io") is None

    await Domain.update({Domain.verified_at: now(), Domain.updated_at: now()}).where(
        Domain.name == "*.shop.io"
    )
    lookup.invalidate(["*.shop.io"])

    assert isinstance(await lookup.resolve("a.shop.io"), Target)
    assert lookup.peek("shop.io") is None, "not under the wildcard: still cached"
    assert lookup.peek("a.b.shop.io") is None


async def test_a_domain_change_is_noticed_by_the_version_check(world: World) -> None:
    """Without Redis: verifying, then removing a domain, changes the version."""
    await point_alias("shop", world.project_id, await world.deployment())
    await world.domain("www.shop.io", verified=False)
    clock = FakeClock()
    lookup = Lookup(ROOT, poll_interval=0.5, clock=clock)
    assert await lookup.resolve("www.shop.io") is None

    await Domain.update({Domain.verified_at: now(), Domain.updated_at: now()}).where(
        Domain.name == "www.shop.io"
    )
    clock.now += 0.5
    assert isinstance(await lookup.resolve("www.shop.io"), Target)

    await Domain.delete().where(Domain.name == "www.shop.io")
    clock.now += 0.5
    assert await lookup.resolve("www.shop.io") is None


async def test_what_domains_follow_is_forgotten_with_them(world: World) -> None:
    """The label → domains map holds only cached domains, however many names are asked."""
    await point_alias("shop", world.project_id, await world.deployment())
    await world.domain("*.shop.io")
    lookup = Lookup(ROOT, poll_interval=None, max_entries=4)
    for n in range(20):
        assert await lookup.resolve(f"h{n}.shop.io") is not None

    assert lookup.stats.entries == 4
    assert set(lookup._via) <= set(lookup._entries)
    assert set().union(*lookup._followers.values()) == set(lookup._via)
    lookup.invalidate()
    assert (lookup._via, lookup._followers) == ({}, {})
