"""What DNS says about a custom domain: whether it proves ownership, whether it points at us,
and, when not, a sentence saying what DNS returned and what it should return.

Ownership: the TXT record `_scalemesh-challenge.<name>` (a wildcard's: of its parent) holds the
domain's token. Routing: a CNAME to `SCALEMESH_CNAME_TARGET`, or A/AAAA records that are all
among `SCALEMESH_PUBLIC_IPS` (which also accepts a CNAME chain that ends at our addresses).
The lookups of one check run at once, so a check takes at most one lookup's lifetime.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from app.domains.dns import Answer, DnsLookup, Outcome, RecordType
from app.domains.records import CheckCode, Routing
from app.settings_domains import DomainSettings

SHOWN_VALUES = 5
"""Found values quoted back to the user; more are counted, not listed."""


@dataclass(frozen=True, slots=True)
class Finding:
    code: CheckCode | None
    """None when all is well."""
    detail: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    owned: bool | None
    """Whether the TXT record proves ownership; None when it was not asked (verified already)."""
    routing: Routing
    code: CheckCode | None
    """The first problem: ownership's, then routing's; None when all is well."""
    detail: str
    """Every finding, one sentence each."""


async def check_domain(
    lookup: DnsLookup,
    settings: DomainSettings,
    name: str,
    challenge: str,
    token: str | None,
) -> CheckResult:
    """Check `name`: its ownership (when the `token` that proves it is given) and its routing."""
    if token is None:
        routing, found = await check_routing(lookup, settings, name)
        return CheckResult(None, routing, found.code, found.detail)
    (owned, proof), (routing, found) = await asyncio.gather(
        check_ownership(lookup, challenge, token), check_routing(lookup, settings, name)
    )
    return CheckResult(
        owned,
        routing,
        proof.code if proof.code is not None else found.code,
        f"{proof.detail} {found.detail}",
    )


async def check_ownership(
    lookup: DnsLookup, challenge: str, token: str, also: frozenset[str] = frozenset()
) -> tuple[bool, Finding]:
    """Whether the TXT record holds `token` (or one of `also`: the same proof under the other
    keys of the ring); the sentences name `token`."""
    answer = await lookup.lookup(challenge, RecordType.TXT)
    if answer.outcome is Outcome.FOUND:
        if ({token} | also).intersection(answer.values):
            return True, Finding(None, f"The TXT record at {challenge} proves ownership.")
        return False, Finding(
            CheckCode.TXT_WRONG,
            f"The TXT record at {challenge} holds {_listed(answer.values)}; "
            f"it should hold {token}.",
        )
    if answer.outcome in (Outcome.NO_RECORD, Outcome.NO_NAME):
        return False, Finding(
            CheckCode.TXT_MISSING,
            f"DNS has no TXT record at {challenge}; add one holding {token}.",
        )
    return False, _unanswered(lookup, answer, f"the TXT record at {challenge}")


async def check_routing(
    lookup: DnsLookup, settings: DomainSettings, name: str
) -> tuple[Routing, Finding]:
    cname, a, aaaa = await asyncio.gather(
        lookup.lookup(name, RecordType.CNAME),
        lookup.lookup(name, RecordType.A),
        lookup.lookup(name, RecordType.AAAA),
    )
    target = settings.cname_target
    addresses = a.values + aaaa.values
    ours = set(settings.public_ips)
    should = f"it should be a CNAME to {target}" + (
        f", or have A/AAAA records among {', '.join(settings.public_ips)} only" if ours else ""
    )
    ok, bad = Routing.OK, Routing.MISCONFIGURED
    if cname.outcome is Outcome.FOUND and target in cname.values:
        return ok, Finding(None, f"{name} is a CNAME to {target}.")
    if addresses and ours.issuperset(addresses):
        return ok, Finding(None, f"{name} points at {_listed(addresses, quote=False)}, ours.")
    answers = (cname, a, aaaa)
    for answer in answers:
        if answer.outcome in (Outcome.TIMEOUT, Outcome.FAILED):
            return Routing.UNKNOWN, _unanswered(lookup, answer, f"the records of {name}")
    if cname.outcome is Outcome.FOUND:
        return bad, Finding(
            CheckCode.CNAME_ELSEWHERE,
            f"{name} is a CNAME to {_listed(cname.values)}; {should}.",
        )
    if any(answer.outcome is Outcome.NO_NAME for answer in answers):
        return bad, Finding(
            CheckCode.NAME_NOT_FOUND, f"{name} does not exist in DNS (NXDOMAIN); {should}."
        )
    if addresses:
        others = [address for address in addresses if address not in ours]
        return bad, Finding(
            CheckCode.ADDRESSES_NOT_OURS,
            f"{name} points at {_listed(others, quote=False)}, not ours; {should}.",
        )
    return bad, Finding(CheckCode.NO_ADDRESS, f"{name} has no CNAME, A or AAAA record; {should}.")


def _unanswered(lookup: DnsLookup, answer: Answer, asked: str) -> Finding:
    if answer.outcome is Outcome.TIMEOUT:
        return Finding(
            CheckCode.DNS_TIMEOUT,
            f"DNS did not answer for {asked} within {lookup.lifetime:g} s; it is asked again "
            "later.",
        )
    return Finding(
        CheckCode.DNS_FAILED,
        f"DNS failed to answer for {asked} ({answer.error}); check the domain's name "
        "servers. It is asked again later.",
    )


def _listed(values: tuple[str, ...] | list[str], *, quote: bool = True) -> str:
    shown = ", ".join(f'"{value}"' if quote else value for value in values[:SHOWN_VALUES])
    more = len(values) - SHOWN_VALUES
    return shown + (f" and {more} more" if more > 0 else "")
