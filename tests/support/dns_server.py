"""An authoritative DNS server in the test process (dnslib), on a loopback port over UDP and TCP.

A test sets the records it needs (`set`), and points the app at the server through
`SCALEMESH_DNS_RESOLVERS=<server.resolvers>`. It answers like an authoritative server:
- the records of a name, following CNAMEs it holds (as a resolver would show the chain);
- NOERROR with no answer for a name that exists (it, or a name under it, has records);
- NXDOMAIN for any other name;
- SERVFAIL for the names in `failing`;
- nothing at all while `silent` is set (a server that never answers: the lookup times out).
Answers larger than 512 bytes are truncated over UDP, so the resolver asks again over TCP, as
it does with real servers. `asked` records each (name, type) asked, in order.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import TracebackType

import pytest
from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, TXT, A, DNSError, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from tests.support.ports import LOOPBACK

TTL = 60
RDATA = {"A": A, "AAAA": AAAA, "CNAME": CNAME, "TXT": TXT}
UDP_LIMIT = 512


def _name(name: str) -> str:
    return name.lower().rstrip(".")


def _strings(value: str) -> list[str]:
    """A TXT value as the strings of at most 255 characters DNS carries it in."""
    return [value[i : i + 255] for i in range(0, len(value), 255)] or [""]


class Zone(BaseResolver):  # type: ignore[misc]
    """The records a test set, answered as an authoritative server would."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.failing: set[str] = set()
        self.silent = False
        self.asked: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        name, kind = _name(str(request.q.qname)), QTYPE[request.q.qtype]
        with self._lock:
            self.asked.append((name, kind))
            if self.silent:
                raise DNSError("silent: no answer")  # dnslib's handler then sends nothing
            reply = request.reply()
            if name in self.failing:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            for _ in range(8):  # a chain of CNAMEs this zone holds, as a resolver shows it
                target = self.records.get((name, "CNAME"))
                if not target or kind == "CNAME":
                    break
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(target[0]), ttl=TTL))
                name = _name(target[0])
            for value in self.records.get((name, kind), []):
                rdata = RDATA[kind](_strings(value) if kind == "TXT" else value)
                reply.add_answer(RR(name, getattr(QTYPE, kind), rdata=rdata, ttl=TTL))
            if not self._exists(name):  # (after a CNAME: to a name nobody has)
                reply.header.rcode = RCODE.NXDOMAIN
            return reply

    def _exists(self, name: str) -> bool:
        return any(key == name or key.endswith(f".{name}") for key, _ in self.records)


class _Handler(DNSHandler):  # type: ignore[misc]
    """dnslib's handler, truncating a large UDP answer as servers do: the question kept (dnslib's
    own `truncate` drops it, and resolvers refuse an answer to no question), TC set, so the
    resolver asks again over TCP."""

    def get_reply(self, data: bytes) -> bytes:
        packed: bytes = super().get_reply(data)
        if self.protocol != "udp" or len(packed) <= UDP_LIMIT:
            return packed
        reply = DNSRecord.parse(data).reply()
        reply.header.tc = 1
        truncated: bytes = reply.pack()
        return truncated


class DnsServer:
    """The zone served on `port` of the loopback address, over UDP and TCP."""

    def __init__(self) -> None:
        self.zone = Zone()
        self._servers: list[DNSServer] = []
        self.port = 0

    @property
    def resolvers(self) -> str:
        """The value of `SCALEMESH_DNS_RESOLVERS` that points at this server."""
        return f"{LOOPBACK}:{self.port}"

    def set(self, name: str, kind: str, *values: str) -> None:
        """Replace the `kind` records of `name` (none: remove them)."""
        with self.zone._lock:
            if values:
                self.zone.records[(_name(name), kind)] = list(values)
            else:
                self.zone.records.pop((_name(name), kind), None)

    def clear(self) -> None:
        with self.zone._lock:
            self.zone.records.clear()
            self.zone.failing.clear()
            self.zone.silent = False

    def fail(self, name: str) -> None:
        """Answer SERVFAIL for `name`."""
        self.zone.failing.add(_name(name))

    @property
    def silent(self) -> bool:
        return self.zone.silent

    @silent.setter
    def silent(self, value: bool) -> None:
        self.zone.silent = value

    @property
    def asked(self) -> list[tuple[str, str]]:
        return list(self.zone.asked)

    def start(self) -> DnsServer:
        logger = DNSLogger(logf=lambda *_: None)
        for _ in range(20):  # the UDP port picked may be taken over TCP: pick another
            udp = DNSServer(self.zone, address=LOOPBACK, port=0, logger=logger, handler=_Handler)
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(self.zone, address=LOOPBACK, port=port, tcp=True, logger=logger)
            except OSError:
                udp.server.server_close()
                continue
            self.port = port
            self._servers = [udp, tcp]
            for server in self._servers:
                server.start_thread()
            return self
        raise RuntimeError("no loopback port free for both UDP and TCP")  # pragma: no cover

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
            server.server.server_close()
        self._servers = []

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    """A DNS server of the test's own, empty, stopped afterwards."""
    with DnsServer() as server:
        yield server
