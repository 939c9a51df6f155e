"""Custom domains in tests: settings pointing the checks at a test DNS server, an API with
announcements recorded (and `api`, a fixture serving it: bind it in a test module by name), and
the DNS records that make a domain work."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.domains.service import DomainService
from app.settings import Settings
from app.tables import Domain
from tests.support.api import Client, bearer, serving
from tests.support.dns_server import DnsServer

ROOT = "example.app"
API_HOST = "deploy.example.org"
TARGET = f"cname.{ROOT}"
OUR_IP = "203.0.113.10"


def domain_settings(
    make_settings: Callable[..., Settings], database_url: str, dns: DnsServer, **more: str
) -> Settings:
    """Settings whose DNS checks ask `dns`, with a root domain, an API host and our address."""
    return make_settings(
        SCALEMESH_DATABASE_URL=database_url,
        SCALEMESH_ROOT_DOMAIN=ROOT,
        SCALEMESH_PUBLIC_URL=f"https://{API_HOST}",
        SCALEMESH_PUBLIC_IPS=OUR_IP,
        SCALEMESH_DNS_RESOLVERS=dns.resolvers,
        **more,
    )


@dataclass
class DomainsApi:
    """The API, with what the domain service announced to the proxies."""

    client: Client
    dns: DnsServer
    heard: list[list[str]] = field(default_factory=list)

    @property
    def service(self) -> DomainService:
        service: DomainService = self.client.app.state.services.domains
        return service

    def add(self, token: str, slug: str, name: str, **body: Any) -> Any:
        return self.client.post(
            f"/projects/{slug}/domains", json={"name": name, **body}, headers=bearer(token)
        )

    def verify(self, token: str, slug: str, name: str) -> Any:
        return self.client.post(f"/projects/{slug}/domains/{name}/verify", headers=bearer(token))

    def show(self, token: str, slug: str, name: str) -> Any:
        return self.client.get(f"/projects/{slug}/domains/{name}", headers=bearer(token))

    def listed(self, token: str, slug: str) -> Any:
        return self.client.get(f"/projects/{slug}/domains", headers=bearer(token))

    def remove(self, token: str, slug: str, name: str) -> Any:
        return self.client.delete(f"/projects/{slug}/domains/{name}", headers=bearer(token))

    def change(self, token: str, slug: str, name: str, **body: Any) -> Any:
        return self.client.patch(
            f"/projects/{slug}/domains/{name}", json=body, headers=bearer(token)
        )

    def rows(self) -> list[dict[str, Any]]:
        """Every stored domain, by name."""
        return self.client.run(lambda: Domain.select().order_by(Domain.name))

    def prove(self, name: str, token: str, *, cname: bool = True) -> None:
        """Publish the TXT record holding `token` (and a CNAME to us) for `name`."""
        base = name.removeprefix("*.")
        self.dns.set(f"_scalemesh-challenge.{base}", "TXT", token)
        if cname:
            self.dns.set(name, "CNAME", TARGET)


@contextlib.contextmanager
def domains_api(settings: Settings, dns: DnsServer) -> Iterator[DomainsApi]:
    """The API on `settings`, its domain announcements recorded in `heard`."""
    with serving(settings) as client:
        api = DomainsApi(client, dns)

        async def record(names: list[str]) -> None:
            api.heard.append(names)

        api.service.announce = record
        client.app.state.services.projects.announce = record
        yield api


@pytest.fixture
def api(
    make_settings: Callable[..., Settings], database_url: str, dns_server: DnsServer
) -> Iterator[DomainsApi]:
    """The domains API on `domain_settings`, checking DNS against `dns_server`."""
    with domains_api(domain_settings(make_settings, database_url, dns_server), dns_server) as api:
        yield api
