"""The reconcile loop's re-checks of custom domains: backoff while DNS is not right, a day apart
once it is, a bounded batch per pass, one replica per domain at a time; through the real
resolver asking the test DNS server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.domains.dns import Answer, DnsPythonLookup, RecordType
from app.domains.rechecks import DomainRechecks, check_and_store
from app.domains.records import DomainRecord
from app.settings import Settings
from app.tables import Domain
from tests.support.api import sign_up
from tests.support.dns_server import DnsServer, dns_server
from tests.support.domains import DomainsApi, domain_settings, domains_api
from tests.support.projects import create

__all__ = ["dns_server"]


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def api(
    make_settings: Callable[..., Settings], database_url: str, dns_server: DnsServer
) -> Iterator[DomainsApi]:
    with domains_api(domain_settings(make_settings, database_url, dns_server), dns_server) as api:
        api.token = sign_up(api.client, "ada@example.com")  # type: ignore[attr-defined]
        assert create(api.client, api.token, name="web").status_code == 201  # type: ignore[attr-defined]
        yield api


def add(api: DomainsApi, name: str) -> str:
    """Add `name` to `web`; its TXT token."""
    response = api.add(api.token, "web", name)  # type: ignore[attr-defined]
    assert response.status_code == 201, response.text
    return str(response.json()["instructions"][0]["value"])


def rechecks(api: DomainsApi, clock: Clock, **kwargs: Any) -> DomainRechecks:
    settings = api.service.settings.domains
    lookup = DnsPythonLookup(settings.dns_resolvers, timeout=0.5, lifetime=1.0)
    return DomainRechecks(lookup, settings, api.service.announce, clock=clock, **kwargs)


def row(api: DomainsApi, name: str) -> dict[str, Any]:
    [found] = [r for r in api.rows() if r["name"] == name]
    return found


def test_a_pending_domain_is_checked_again_with_backoff_until_dns_proves_it(
    api: DomainsApi,
) -> None:
    token = add(api, "www.example.com")
    clock = Clock()
    loop = rechecks(api, clock)
    delays, codes = [], set()

    for _ in range(10):
        assert api.client.run(loop.run_due) == 1
        stored = row(api, "www.example.com")
        delays.append((stored["next_check_at"] - clock.now).total_seconds())
        codes.add(stored["check_code"])
        assert api.client.run(loop.run_due) == 0  # not due again before then
        clock.now = stored["next_check_at"]

    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert codes == {"txt_missing"}
    assert row(api, "www.example.com")["check_attempts"] == 10
    assert row(api, "www.example.com")["verified_at"] is None
    assert api.heard == []

    api.prove("www.example.com", token)
    assert api.client.run(loop.run_due) == 1

    stored = row(api, "www.example.com")
    assert stored["verified_at"] == clock.now
    assert (stored["routing"], stored["check_code"], stored["check_attempts"]) == ("ok", None, 0)
    assert stored["next_check_at"] == clock.now + timedelta(days=1)
    assert api.heard == [["www.example.com"]]


def test_a_verified_domain_that_points_elsewhere_is_rechecked_without_asking_for_the_txt(
    api: DomainsApi,
) -> None:
    token = add(api, "www.example.com")
    api.prove("www.example.com", token, cname=False)
    api.dns.set("www.example.com", "A", "192.0.2.99")
    clock = Clock()
    loop = rechecks(api, clock)
    api.client.run(loop.run_due)  # verified by its TXT record, but not pointing at us
    verified = row(api, "www.example.com")
    asked_before = len(api.dns.asked)
    clock.now = verified["next_check_at"]

    api.client.run(loop.run_due)

    stored = row(api, "www.example.com")
    assert verified["verified_at"] is not None
    assert (stored["routing"], stored["check_code"]) == ("misconfigured", "addresses_not_ours")
    assert stored["verified_at"] == verified["verified_at"]
    assert stored["check_attempts"] == 2
    assert "TXT" not in {kind for _, kind in api.dns.asked[asked_before:]}


def test_a_pass_checks_a_bounded_batch_the_longest_due_first(api: DomainsApi) -> None:
    for name in ("a.example.com", "b.example.com", "c.example.com"):
        add(api, name)
    clock = Clock()
    loop = rechecks(api, clock, batch=2)

    first = api.client.run(loop.run_due)
    checked = {r["name"] for r in api.rows() if r["checked_at"] is not None}
    second = api.client.run(loop.run_due)

    assert (first, second) == (2, 1)
    assert checked == {"a.example.com", "b.example.com"}


def test_two_replicas_never_check_the_same_domain_at_once(api: DomainsApi) -> None:
    names = [f"site{n}.example.com" for n in range(6)]
    for name in names:
        add(api, name)
    clock = Clock()
    one, other = rechecks(api, clock), rechecks(api, clock)

    async def both() -> list[int]:
        return list(await asyncio.gather(one.run_due(), other.run_due()))

    counts = api.client.run(both)

    assert sum(counts) == len(names)
    txt_asked = [name for name, kind in api.dns.asked if kind == "TXT"]
    assert sorted(txt_asked) == sorted(f"_scalemesh-challenge.{name}" for name in names)
    assert {r["check_attempts"] for r in api.rows()} == {1}


def test_the_reconcile_loop_starts_a_pass_beside_its_own_work(api: DomainsApi) -> None:
    add(api, "www.example.com")
    reconciler = api.client.app.state.services.reconciler

    async def tick() -> int:
        await reconciler.tick()
        running = reconciler.domains.running
        checked: int = await running
        reconciler.domains.kick()
        again = reconciler.domains.running
        reconciler.domains.kick()  # a pass still running is not started twice
        assert reconciler.domains.running is again is not running
        await again
        return checked

    assert api.client.run(tick) == 1
    assert row(api, "www.example.com")["check_code"] == "txt_missing"


class Broken:
    lifetime = 1.0

    async def lookup(self, name: str, record: RecordType) -> Answer:
        raise RuntimeError("resolver crashed")


def test_a_failed_pass_is_logged_and_the_next_one_runs(
    api: DomainsApi, caplog: pytest.LogCaptureFixture
) -> None:
    add(api, "www.example.com")
    loop = DomainRechecks(Broken(), api.service.settings.domains, api.service.announce)

    with caplog.at_level(logging.ERROR, logger="app.domains.rechecks"):
        assert api.client.run(loop.pass_logged) == 0

    assert [r.getMessage() for r in caplog.records] == ["domain checks failed"]


def test_shutting_down_stops_a_pass_that_waits_on_dns(api: DomainsApi) -> None:
    add(api, "www.example.com")
    api.dns.silent = True
    settings = api.service.settings.domains
    lookup = DnsPythonLookup(settings.dns_resolvers, timeout=30, lifetime=60)
    loop = DomainRechecks(lookup, settings, api.service.announce)

    async def start_and_stop() -> bool:
        loop.kick()
        await asyncio.sleep(0.5)  # the pass is waiting on the silent server by now
        assert api.dns.asked
        await loop.aclose()
        await loop.aclose()  # nothing left to stop
        assert loop.running is not None
        return loop.running.cancelled()

    assert api.client.run(start_and_stop) is True
    assert api.client.run(lambda: Domain.select(Domain.checked_at)) == [{"checked_at": None}]


def test_a_domain_removed_during_its_check_stays_removed(api: DomainsApi) -> None:
    token = add(api, "www.example.com")
    api.prove("www.example.com", token)
    settings = api.service.settings.domains
    [stored] = api.client.run(lambda: Domain.select(*DomainRecord.COLUMNS))
    domain = DomainRecord.of(stored)
    api.remove(api.token, "web", "www.example.com")  # type: ignore[attr-defined]
    api.heard.clear()

    async def check() -> DomainRecord:
        return await check_and_store(
            DnsPythonLookup(settings.dns_resolvers), settings, api.service.announce, domain
        )

    assert api.client.run(check) == domain
    assert api.rows() == []
    assert api.heard == []  # not announced as verified: it is gone
