"""The DNS checks, through the real dnspython resolver asking a DNS server in the test process
(`SCALEMESH_DNS_RESOLVERS`): each state a domain's DNS can be in, and what the user is told."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from app.domains.checks import CheckResult, check_domain
from app.domains.dns import Answer, DnsPythonLookup, Outcome, RecordType
from app.domains.records import CheckCode, Routing
from app.settings import Settings
from tests.support.api import TEST_SECRET_KEY
from tests.support.dns_server import DnsServer, dns_server

__all__ = ["dns_server"]

NAME = "www.example.com"
CHALLENGE = "_scalemesh-challenge.www.example.com"
TOKEN = "a" * 40
TARGET = "cname.example.app"


def settings_for(
    server: DnsServer, tmp_path: Path, ips: str = "203.0.113.10, 2001:db8::10"
) -> Settings:
    return Settings.from_env(
        {
            "SCALEMESH_DATA_DIR": str(tmp_path),
            "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY,
            "SCALEMESH_ROOT_DOMAIN": "example.app",
            "SCALEMESH_PUBLIC_IPS": ips,
            "SCALEMESH_DNS_RESOLVERS": server.resolvers,
        }
    )


def check(
    server: DnsServer,
    tmp_path: Path,
    token: str | None = TOKEN,
    *,
    ips: str = "203.0.113.10, 2001:db8::10",
    lifetime: float = 2.0,
) -> CheckResult:
    settings = settings_for(server, tmp_path, ips)
    lookup = DnsPythonLookup(
        settings.domains.dns_resolvers, timeout=lifetime / 2, lifetime=lifetime
    )
    return asyncio.run(check_domain(lookup, settings.domains, NAME, CHALLENGE, token))


def test_no_record_at_all_says_which_records_to_add(dns_server: DnsServer, tmp_path: Path) -> None:
    dns_server.set("example.com", "A", "192.0.2.1")  # the zone exists; www does not

    found = check(dns_server, tmp_path)

    assert found.owned is False
    assert found.routing is Routing.MISCONFIGURED
    assert found.code is CheckCode.TXT_MISSING
    assert f"DNS has no TXT record at {CHALLENGE}; add one holding {TOKEN}." in found.detail
    assert (
        f"{NAME} does not exist in DNS (NXDOMAIN); it should be a CNAME to {TARGET}, or have "
        "A/AAAA records among 203.0.113.10, 2001:db8::10 only." in found.detail
    )


def test_a_wrong_txt_record_is_quoted_with_the_value_it_should_hold(
    dns_server: DnsServer, tmp_path: Path
) -> None:
    dns_server.set(CHALLENGE, "TXT", "google-site-verification=xyz", "b" * 40)
    dns_server.set(NAME, "CNAME", TARGET)

    found = check(dns_server, tmp_path)

    assert found.owned is False
    assert found.routing is Routing.OK
    assert found.code is CheckCode.TXT_WRONG
    assert (
        f'The TXT record at {CHALLENGE} holds "google-site-verification=xyz", "{"b" * 40}"; '
        f"it should hold {TOKEN}." in found.detail
    )
    assert f"{NAME} is a CNAME to {TARGET}." in found.detail


def test_the_right_txt_record_and_cname_are_all_well(dns_server: DnsServer, tmp_path: Path) -> None:
    dns_server.set(CHALLENGE, "TXT", "something else", TOKEN)
    dns_server.set(NAME, "CNAME", TARGET + ".")

    found = check(dns_server, tmp_path)

    assert (found.owned, found.routing, found.code) == (True, Routing.OK, None)
    assert found.detail == (
        f"The TXT record at {CHALLENGE} proves ownership. {NAME} is a CNAME to {TARGET}."
    )


def test_a_cname_elsewhere_names_where_it_points_and_where_it_should(
    dns_server: DnsServer, tmp_path: Path
) -> None:
    dns_server.set(CHALLENGE, "TXT", TOKEN)
    dns_server.set(NAME, "CNAME", "sites.other-host.net")
    dns_server.set("sites.other-host.net", "A", "198.51.100.7")

    found = check(dns_server, tmp_path)

    assert (found.owned, found.routing) == (True, Routing.MISCONFIGURED)
    assert found.code is CheckCode.CNAME_ELSEWHERE
    assert f'{NAME} is a CNAME to "sites.other-host.net"; it should be a CNAME to {TARGET}' in (
        found.detail
    )


def test_a_cname_to_a_name_that_does_not_exist_is_still_a_cname_elsewhere(
    dns_server: DnsServer, tmp_path: Path
) -> None:
    dns_server.set(NAME, "CNAME", "typo.example.nett")

    found = check(dns_server, tmp_path, token=None)

    assert found.owned is None  # verified already: ownership is not asked again
    assert (found.routing, found.code) == (Routing.MISCONFIGURED, CheckCode.CNAME_ELSEWHERE)
    assert not any(name == CHALLENGE for name, _ in dns_server.asked)


def test_a_cname_chain_that_ends_at_our_addresses_points_at_us(
    dns_server: DnsServer, tmp_path: Path
) -> None:
    dns_server.set(NAME, "CNAME", "edge.example.net")
    dns_server.set("edge.example.net", "A", "203.0.113.10")

    found = check(dns_server, tmp_path, token=None)

    assert (found.routing, found.code) == (Routing.OK, None)
    assert found.detail == f"{NAME} points at 203.0.113.10, ours."


def test_a_and_aaaa_records_that_are_all_ours_point_at_us(
    dns_server: DnsServer, tmp_path: Path
) -> None:
    dns_server.set(NAME, "A", "203.0.113.10")
    dns_server.set(NAME, "AAAA", "2001:db8:0:0::10")

    found = check(dns_server, tmp_path, token=None)

    assert (found.routing, found.code) == (Routing.OK, None)
    assert found.detail == f"{NAME} points at 203.0.113.10, 2001:db8::10, ours."


def test_a_records_not_ours_are_named(dns_server: DnsServer, tmp_path: Path) -> None:
    dns_server.set(NAME, "A", "203.0.113.10", "192.0.2.44")

    found = check(dns_server, tmp_path, token=None)

    assert (found.routing, found.code) == (Routing.MISCONFIGURED, CheckCode.ADDRESSES_NOT_OURS)
    assert f"{NAME} points at 192.0.2.44, not ours; it should be a CNAME to {TARGET}" in (
        found.detail
    )


def test_without_public_ips_only_a_cname_to_us_will_do(
    dns_server: DnsServer, tmp_path: Path
) -> None:
    dns_server.set(NAME, "A", "203.0.113.10")

    found = check(dns_server, tmp_path, token=None, ips="")

    assert found.code is CheckCode.ADDRESSES_NOT_OURS
    assert found.detail == (
        f"{NAME} points at 203.0.113.10, not ours; it should be a CNAME to {TARGET}."
    )


def test_a_name_with_no_address_records(dns_server: DnsServer, tmp_path: Path) -> None:
    dns_server.set(NAME, "MX", "mail.example.com")  # exists, but serves no web
    dns_server.set(NAME, "TXT", "v=spf1 -all")

    found = check(dns_server, tmp_path, token=None)

    assert (found.routing, found.code) == (Routing.MISCONFIGURED, CheckCode.NO_ADDRESS)
    assert found.detail.startswith(f"{NAME} has no CNAME, A or AAAA record; it should be")


def test_a_silent_server_is_a_timeout_within_the_lifetime(
    dns_server: DnsServer, tmp_path: Path
) -> None:
    dns_server.silent = True

    started = time.monotonic()
    found = check(dns_server, tmp_path, lifetime=0.6)
    took = time.monotonic() - started

    assert took < 3
    assert (found.owned, found.routing, found.code) == (
        False,
        Routing.UNKNOWN,
        CheckCode.DNS_TIMEOUT,
    )
    assert f"DNS did not answer for the TXT record at {CHALLENGE} within 0.6 s" in found.detail
    assert f"DNS did not answer for the records of {NAME} within 0.6 s" in found.detail


def test_a_failing_server_is_reported_as_such(dns_server: DnsServer, tmp_path: Path) -> None:
    dns_server.fail(NAME)
    dns_server.set(CHALLENGE, "TXT", TOKEN)

    found = check(dns_server, tmp_path)

    assert (found.owned, found.routing, found.code) == (True, Routing.UNKNOWN, CheckCode.DNS_FAILED)
    assert f"DNS failed to answer for the records of {NAME} (" in found.detail
    assert "check the domain's name servers" in found.detail


def test_large_answers_come_over_tcp(dns_server: DnsServer, tmp_path: Path) -> None:
    values = [f"record-{n}-" + "x" * 60 for n in range(20)]
    dns_server.set(CHALLENGE, "TXT", *values, TOKEN)
    dns_server.set(NAME, "CNAME", TARGET)

    found = check(dns_server, tmp_path)

    assert found.owned is True  # the token was among 21 records, past what UDP carries


def test_the_lookup_answers_each_outcome(dns_server: DnsServer, tmp_path: Path) -> None:
    dns_server.set(NAME, "TXT", "x" * 200 + "y" * 200)
    dns_server.set(NAME, "A", "192.0.2.1")
    lookup = DnsPythonLookup(settings_for(dns_server, tmp_path).domains.dns_resolvers)

    async def ask() -> list[Answer]:
        return [
            await lookup.lookup(NAME, RecordType.TXT),
            await lookup.lookup(NAME, RecordType.AAAA),
            await lookup.lookup("nope.example.com", RecordType.A),
        ]

    long_txt, no_record, no_name = asyncio.run(ask())

    assert long_txt.outcome is Outcome.FOUND
    assert long_txt.values[0] == "x" * 200 + "y" * 54 + "…"  # cut: it is shown back to users
    assert no_record == Answer(Outcome.NO_RECORD)
    assert no_name == Answer(Outcome.NO_NAME)
    assert lookup.lifetime == 4.0


def test_without_resolvers_the_system_ones_are_used() -> None:
    lookup = DnsPythonLookup()

    assert lookup.resolver.nameservers  # read from /etc/resolv.conf


@pytest.mark.parametrize("count", [6])
def test_many_values_are_counted_not_all_listed(
    dns_server: DnsServer, tmp_path: Path, count: int
) -> None:
    dns_server.set(CHALLENGE, "TXT", *(f"v{n}" for n in range(count)))
    dns_server.set(NAME, "CNAME", TARGET)

    found = check(dns_server, tmp_path)

    assert '"v0", "v1", "v2", "v3", "v4" and 1 more; it should hold' in found.detail
