"""Asking DNS: the `DnsLookup` port the domain checks use, and its dnspython implementation.

Every answer is an `Answer` (found values, no such record, no such name, a timeout, an error);
dnspython's exceptions stop here. Each lookup gives up after `lifetime` seconds, so a check, and
the reconcile pass that runs it, never waits on a silent name server for longer than that.
Nothing is cached: a user who has just fixed a record sees the fix on the next check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import ip_address
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

log = logging.getLogger(__name__)

QUERY_TIMEOUT = 2.0
"""Seconds to wait for one name server's answer before asking the next (or again)."""
LIFETIME = 4.0
"""Seconds one lookup may take in all, retries included."""
MAX_VALUE = 255
"""Characters of a found value kept: a TXT record may be long, and is shown back to the user."""


class RecordType(StrEnum):
    TXT = "TXT"
    CNAME = "CNAME"
    A = "A"
    AAAA = "AAAA"


class Outcome(StrEnum):
    FOUND = "found"
    NO_RECORD = "no_record"
    """The name exists, without a record of this type."""
    NO_NAME = "no_name"
    """NXDOMAIN: the name does not exist at all."""
    TIMEOUT = "timeout"
    FAILED = "failed"
    """SERVFAIL, REFUSED, an unreachable or broken name server."""


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    values: tuple[str, ...] = ()
    """TXT: each record's strings joined; CNAME: the target, lower-case, no final dot;
    A/AAAA: each address in canonical form."""
    error: str = ""
    """For `FAILED`: what went wrong, in the resolver's words."""


class DnsLookup(Protocol):
    """Ask DNS for one record type of one name."""

    @property
    def lifetime(self) -> float:
        """The longest a lookup takes before it answers `TIMEOUT`."""
        ...

    async def lookup(self, name: str, record: RecordType) -> Answer: ...


class DnsPythonLookup:
    """`DnsLookup` over dnspython's async resolver: the given resolvers (address, port), or the
    system's when there are none."""

    def __init__(
        self,
        resolvers: tuple[tuple[str, int], ...] = (),
        *,
        timeout: float = QUERY_TIMEOUT,
        lifetime: float = LIFETIME,
    ) -> None:
        self.resolver = dns.asyncresolver.Resolver(configure=not resolvers)
        if resolvers:
            self.resolver.nameservers = [
                dns.nameserver.Do53Nameserver(address, port) for address, port in resolvers
            ]
        self.resolver.timeout = timeout
        self.resolver.lifetime = lifetime
        self.resolver.cache = None

    @property
    def lifetime(self) -> float:
        return float(self.resolver.lifetime)

    async def lookup(self, name: str, record: RecordType) -> Answer:
        try:
            answer = await self.resolver.resolve(name, record.value, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer(Outcome.NO_NAME)
        except dns.resolver.NoAnswer:
            return Answer(Outcome.NO_RECORD)
        except dns.exception.Timeout:
            return Answer(Outcome.TIMEOUT)
        except dns.exception.DNSException as exc:
            log.info(
                "dns lookup failed", extra={"domain": name, "record": record, "error": str(exc)}
            )
            return Answer(Outcome.FAILED, error=_short(str(exc)))
        return Answer(Outcome.FOUND, tuple(_value(record, rdata) for rdata in answer))


def _value(record: RecordType, rdata: object) -> str:
    if record is RecordType.TXT:
        strings: tuple[bytes, ...] = getattr(rdata, "strings", ())
        return _short(b"".join(strings).decode("utf-8", errors="replace"))
    if record is RecordType.CNAME:
        return str(getattr(rdata, "target", "")).lower().removesuffix(".")
    return str(ip_address(str(getattr(rdata, "address", ""))))


def _short(text: str) -> str:
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"
