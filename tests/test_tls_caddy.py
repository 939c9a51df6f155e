"""Automatic TLS on one machine: the real Caddy (deploy/caddy/Caddyfile, Caddy's own CA) in
front of the real proxy (`scalemesh serve proxy`), asked through curl with `--resolve`.

A verified custom domain gets its own certificate at its first handshake and serves the
project's production deployment; a name the proxy does not vouch for gets no certificate (the
handshake fails, and the proxy logs the refusal); once it is verified, the next handshake gets
one, with Caddy left running. Deployment names all share the one wildcard certificate, so no
preview hostname is ever asked about or given a certificate of its own.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.settings import Settings
from app.tables import Domain
from tests.support.caddy import Caddy
from tests.support.processes import cli_env
from tests.support.proxy import INDEX, seed
from tests.support.topology_processes import Service, scalemesh
from tests.support.waiting import wait_until

ROOT_DOMAIN = "sites.test"
VERIFIED = "www.example.test"
APEX = "example.test"
PENDING = "pending.example.test"
UNKNOWN = "unknown.example.test"
HANDSHAKE_FAILED = 35
"""curl's exit code when the TLS handshake fails (CURLE_SSL_CONNECT_ERROR)."""


class Front:
    """The proxy and Caddy in front of it, over one seeded database."""

    def __init__(self, proxy: Service, caddy: Caddy, settings: Settings) -> None:
        self.proxy, self.caddy, self.settings = proxy, caddy, settings

    def refusals(self) -> list[str]:
        """The domains the proxy's ask endpoint logged as refused."""
        found = []
        for path in sorted(self.proxy.logs.glob("*.err")):
            for line in path.read_text(errors="replace").splitlines():
                record = json.loads(line) if line.startswith("{") else {}
                if record.get("msg") == "tls refused":
                    found.append(str(record.get("domain")))
        return found


async def add_domains(settings: Settings, project_id: int) -> None:
    """The project's domains as the domains service leaves them: the apex redirecting to www,
    both verified, and one still pending (its TXT record not seen yet)."""
    now = datetime.now(UTC)
    for name, redirect_to, verified_at in (
        (VERIFIED, None, now),
        (APEX, VERIFIED, now),
        (PENDING, None, None),
    ):
        await Domain.insert(
            Domain(
                name=name,
                project=project_id,
                redirect_to=redirect_to,
                token=f"token-of-{name}",
                verified_at=verified_at,
                routing="ok" if verified_at else "unknown",
            )
        )


async def verify(name: str) -> None:
    now = datetime.now(UTC)
    await Domain.update({Domain.verified_at: now, Domain.updated_at: now}).where(
        Domain.name == name
    )


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Front]:
    home = tmp_path_factory.mktemp("tls")
    env = cli_env(home / "data") | {"SCALEMESH_ROOT_DOMAIN": ROOT_DOMAIN}
    (home / "data").mkdir()
    shutil.copyfile(sqlite_template, home / "data" / "scalemesh.sqlite3")
    settings = Settings.from_env(env)
    asyncio.run(_seed(settings))
    proxy = scalemesh("proxy", "proxy", env, home / "logs", ready="/_scalemesh/livez")
    caddy = Caddy(home / "caddy", root_domain=ROOT_DOMAIN, proxy_address=proxy.url[7:])
    try:
        proxy.start()
        caddy.start()
        yield Front(proxy, caddy, settings)
    finally:
        if caddy.service.running:
            caddy.service.stop()
        proxy.stop()


async def _seed(settings: Settings) -> None:
    project_id = await seed(settings)  # project `web`, production alias `web` → INDEX
    await add_domains(settings, project_id)


def test_a_verified_domain_is_served_over_https_with_the_production_content(
    front: Front,
) -> None:
    answer = front.caddy.curl(VERIFIED)

    assert answer.returncode == 0, answer.stderr
    body, _, status = answer.stdout.rpartition("\n")
    assert (status, body) == ("200", INDEX.decode())
    # Its own certificate, from the handshake on: nothing was issued for it before.
    assert front.caddy.served_names(VERIFIED) == [VERIFIED]
    assert VERIFIED in front.caddy.certificate_names()


def test_an_apex_domain_answers_its_308_to_www_over_https_keeping_path_and_query(
    front: Front,
) -> None:
    answer = front.caddy.curl(APEX, "/docs/a%20b?x=1&y=2", "--head")

    assert answer.returncode == 0, answer.stderr
    status, *fields = answer.stdout.splitlines()
    headers = {}
    for field in fields:
        name, _, value = field.partition(": ")
        headers[name.lower()] = value
    assert status.startswith("HTTP/2 308")
    # Served on the apex's own certificate, answered by the proxy (not Caddy's HTTP side).
    assert front.caddy.served_names(APEX) == [APEX]
    assert headers["server"] == "uvicorn"
    # Host, path and query kept, and the visitor's scheme: Caddy's hop is plain HTTP, but the
    # proxy believes its X-Forwarded-Proto (Caddy runs on a trusted address, 127.0.0.1).
    assert headers["location"] == f"https://{VERIFIED}/docs/a%20b?x=1&y=2"


def test_an_unverified_name_gets_no_certificate_until_it_is_verified(front: Front) -> None:
    for name in (PENDING, UNKNOWN):
        answer = front.caddy.curl(name)
        assert answer.returncode == HANDSHAKE_FAILED, (name, answer.stdout, answer.stderr)
    # Caddy asked, the proxy said no and logged whom it refused; nothing was issued.
    wait_until(lambda: {PENDING, UNKNOWN} <= set(front.refusals()), what="refusals logged")
    assert not {PENDING, UNKNOWN} & front.caddy.certificate_names()

    asyncio.run(verify(PENDING))

    # With Caddy still running: the next handshake after the proxy sees the change gets one.
    served = wait_until(
        lambda: (answer := front.caddy.curl(PENDING)).returncode == 0 and answer.stdout,
        interval=0.2,
        what="the newly verified domain served",
    )
    assert served.rpartition("\n") == (INDEX.decode(), "\n", "200")
    assert front.caddy.curl(UNKNOWN).returncode == HANDSHAKE_FAILED


def test_deployment_names_share_the_one_wildcard_certificate(front: Front) -> None:
    production = front.caddy.curl(f"web.{ROOT_DOMAIN}")
    unknown_label = front.caddy.curl(f"nothing-here.{ROOT_DOMAIN}")

    assert production.stdout.rpartition("\n") == (INDEX.decode(), "\n", "200")
    # A label with no deployment still gets the wildcard (the proxy's own 404 page answers).
    assert unknown_label.stdout.endswith("\n404"), unknown_label.stderr
    for label in ("web", "nothing-here", "web-git-feature-x"):
        assert front.caddy.served_names(f"{label}.{ROOT_DOMAIN}") == [f"*.{ROOT_DOMAIN}"]
    # No preview hostname got a certificate of its own (none would reach the CT logs), and
    # none was refused: Caddy asks only about names its wildcard does not cover.
    issued = front.caddy.certificate_names()
    assert not {name for name in issued if name.endswith(f".{ROOT_DOMAIN}")} - {f"*.{ROOT_DOMAIN}"}
    assert not [name for name in front.refusals() if name.endswith(ROOT_DOMAIN)]
