"""The proxy's Prometheus metrics, and the hosts on which it answers `/metrics` at all.

The proxy serves every tenant by `Host`, so `/metrics` must never shadow a site's own
`/metrics`: it is answered only when the `Host` is an IP address (how Prometheus scrapes a
pod) or a name in `SCALEMESH_PROXY_METRICS_HOSTS`, and even then only while no alias has that
name (the caller checks). Nothing is counted on the hot path beyond what the proxy already
keeps (the object cache's own counters, one integer of bytes sent): the values are read when
Prometheus scrapes, by a collector of this proxy's own registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.settings import Settings
from proxy.cache import ObjectCache
from proxy.sending import PATHSEND, Message, Send
from proxy.serve import ProxyResponse
from proxy.target import Redirect, Target

METRICS_PATH = "/metrics"
_READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(slots=True)
class Sent:
    """What this proxy answered: plain numbers, which the hot path adds to."""

    bytes: int = 0
    """Response body bytes."""
    statuses: dict[int, int] = field(default_factory=dict)
    """Answers by status (not the health check's, nor `/metrics`')."""

    def answered(self, status: int, size: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.bytes += size


class _Resolves(Protocol):
    async def resolve(self, host: str) -> Target | Redirect | None: ...


class _Proxy(Protocol):
    """What `answers` reads of the proxy."""

    @property
    def settings(self) -> Settings: ...

    @property
    def lookup(self) -> _Resolves: ...


class ProxyCollector(Collector):
    """Reads the proxy's own counters when Prometheus scrapes."""

    def __init__(self, cache: ObjectCache, sent: Sent) -> None:
        self.cache = cache
        self.sent = sent

    def collect(self) -> Iterator[Metric]:
        stats = self.cache.stats
        yield CounterMetricFamily(
            "scalemesh_proxy_cache_hits",
            "Files answered from the proxy's memory",
            value=stats.hits,
        )
        yield CounterMetricFamily(
            "scalemesh_proxy_cache_misses",
            "Files the proxy had to read from storage (or wait for a read of)",
            value=stats.misses,
        )
        yield CounterMetricFamily(
            "scalemesh_proxy_bytes_sent",
            "Response body bytes the proxy sent (as sent: compressed when it was)",
            value=self.sent.bytes,
        )
        responses = CounterMetricFamily(
            "scalemesh_proxy_responses",
            "Answers to requests for sites, by status",
            labels=("status",),
        )
        for status, count in sorted(self.sent.statuses.items()):
            responses.add_metric((str(status),), count)
        yield responses
        yield GaugeMetricFamily(
            "scalemesh_proxy_cache_bytes", "Bytes held in the proxy's file cache", value=stats.bytes
        )


def registry_for(cache: ObjectCache, sent: Sent) -> CollectorRegistry:
    """A registry of this proxy's own: a process (or a test) may run many proxies."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ProxyCollector(cache, sent))
    return registry


def response(registry: CollectorRegistry) -> ProxyResponse:
    """The scrape: every metric of `registry`, never cached by anyone on the way."""
    body = generate_latest(registry)
    return ProxyResponse(
        status=200,
        headers=[
            ("content-type", CONTENT_TYPE_LATEST),
            ("content-length", str(len(body))),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
        ],
        body=body,
    )


def counting(send: Send, sent: Sent) -> Send:
    """`send`, adding the bytes of each body it sends to `sent`."""

    start: Message = {}

    async def counted(message: Message) -> None:
        nonlocal start
        kind = message["type"]
        if kind == "http.response.start":
            sent.answered(message["status"], 0)
            start = message
        elif kind == "http.response.body":
            sent.bytes += len(message.get("body", b""))
        elif kind == PATHSEND:
            # The server sends the whole file itself (a range never goes this way): its size
            # is the Content-Length already sent, not a stat of the file on the event loop.
            sent.bytes += int(dict(start["headers"])[b"content-length"])
        await send(message)

    return counted


async def answers(host: str, method: str, proxy: _Proxy) -> bool:
    """Whether `/metrics` on `host` is the proxy's own: an address or an internal name, and
    no site's. A tenant is never shadowed, even by a name an alias took after the settings
    named it."""
    return (
        method in _READ_METHODS
        and is_metrics_host(host, proxy.settings.proxy_metrics_hosts)
        and await proxy.lookup.resolve(host) is None
    )


def is_metrics_host(host: str, names: tuple[str, ...]) -> bool:
    """Whether `host` (a `Host` header, maybe with a port) is an IP address or a configured
    internal name, never a hostname the proxy would otherwise serve a site on."""
    name = host.strip().lower()
    if name.startswith("["):  # an IPv6 literal: [::1]:8080
        inner, bracket, _ = name[1:].partition("]")
        name = inner if bracket else name
    else:
        head, colon, port = name.rpartition(":")
        if colon and port.isdigit():
            name = head
    name = name.removesuffix(".")
    if name in names:
        return True
    try:
        ip_address(name)
    except ValueError:
        return False
    return True
