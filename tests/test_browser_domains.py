"""A custom domain in a real browser: add it on the dashboard, create the DNS records it shows,
verify, and open the site at that name.

The API serves over real HTTP in this process, the proxy in its own process (as in
production), and the DNS checks ask a DNS server in this process. Chromium resolves the custom
domain to the loopback address (`--host-resolver-rules`), so it opens the proxy by that name, as
a visitor would once the CNAME is in place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.asgi import create_app
from app.deployments.lifecycle import DeploymentState
from app.hostnames import production_label
from app.settings import Settings
from app.storage.choice import storage_from_settings
from app.tables import Alias, Deployment, Domain, Project, User
from proxy.asgi import HEALTH_PATH
from tests.support import dns_server as dns_support
from tests.support.api import OfflineResolver
from tests.support.browser import ARTIFACTS, chromium
from tests.support.dns_server import DnsServer
from tests.support.ports import bound_socket, port_of, reserved_port
from tests.support.processes import cli_env, http_client, running
from tests.support.proxy import ship
from tests.support.servers import uvicorn_in_thread
from tests.support.waiting import wait_until

dns_server = dns_support.dns_server

WAIT_MS = 30_000
DOMAIN = "www.shop.test"
EMAIL = "ada@example.com"
PASSWORD = "correct horse battery"
PAGE = b"<!doctype html><title>Shop</title><h1>The shop in production</h1>"


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium(WAIT_MS, [f"--host-resolver-rules=MAP {DOMAIN} 127.0.0.1"]) as launched:
        yield launched


async def production_site(settings: Settings, email: str) -> None:
    """Project `shop` of `email`, production serving a ready deployment."""
    owner = await User.select(User._meta.primary_key).where(User.email == email).first()
    assert owner is not None
    project = await Project.insert(
        Project(slug="shop", name="shop", owner=owner["id"], git_url="https://x.test/shop.git")
    )
    project_id = int(project[0]["id"])
    rows = await Deployment.insert(
        Deployment(project=project_id, sha="b" * 40, state=DeploymentState.READY)
    )
    deployment_id = str(rows[0]["id"])
    await Alias.insert(
        Alias(hostname=production_label("shop"), project=project_id, deployment=deployment_id)
    )
    await ship(storage_from_settings(settings.storage), project_id, deployment_id, PAGE)


async def token_of(name: str) -> str:
    row = await Domain.select(Domain.token).where(Domain.name == name).first()
    assert row is not None
    return str(row["token"])


def shown_records(page: Page) -> list[tuple[str, str, str]]:
    """The records the page says to create: (type, name, value), as the user reads them."""
    rows = page.locator(f'li[data-domain="{DOMAIN}"] tr[data-record]')
    return [
        (
            row.get_attribute("data-record") or "",
            row.locator("code.copyable").nth(0).inner_text(),
            row.locator("code.copyable").nth(1).inner_text(),
        )
        for row in rows.all()
    ]


@pytest.mark.timeout(180)
def test_add_a_domain_create_its_records_verify_and_open_it(
    make_settings: Callable[..., Settings],
    database_url: str,
    dns_server: DnsServer,
    browser: Browser,
    tmp_path: Path,
) -> None:
    api_listener, proxy_port = bound_socket(), reserved_port()
    api_url = f"http://localhost:{port_of(api_listener)}"
    settings = make_settings(
        SCALEMESH_DATABASE_URL=database_url,
        SCALEMESH_PUBLIC_URL=api_url,
        SCALEMESH_DEPLOYMENT_URL_TEMPLATE=f"http://{{host}}:{proxy_port}",
        SCALEMESH_DNS_RESOLVERS=dns_server.resolvers,
    )
    app = create_app(settings, ref_resolver=OfflineResolver(), reconcile=False)
    proxy_env = {**cli_env(tmp_path / "proxy"), **settings.sources}
    proxy_args = ["serve", "proxy", "--host", "127.0.0.1", "--port", str(proxy_port)]
    with (
        uvicorn_in_thread(app, api_listener) as api,
        running(*proxy_args, env=proxy_env, logs=tmp_path / "logs") as proxy,
        http_client() as client,
    ):
        proxy.wait_until_ok(client, f"http://127.0.0.1:{proxy_port}{HEALTH_PATH}")
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=api_url)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        page.goto(f"{api_url}/signup")
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page).to_have_url(f"{api_url}/new")
        api.call(lambda: production_site(settings, EMAIL))

        # Add the domain: it is pending, and the page lists the exact records to create.
        page.goto(f"{api_url}/projects/shop")
        page.get_by_label("Domain", exact=True).fill(DOMAIN)
        page.get_by_role("button", name="Add domain").click()
        expect(page).to_have_url(f"{api_url}/projects/shop#domain-{DOMAIN}")
        entry = page.locator(f'li[data-domain="{DOMAIN}"]')
        expect(entry.locator('[data-field="state"]')).to_have_text("pending")
        token = api.call(lambda: token_of(DOMAIN))
        records = shown_records(page)
        assert records == [
            ("TXT", f"_scalemesh-challenge.{DOMAIN}", token),
            ("CNAME", DOMAIN, settings.domains.cname_target),
        ]
        ARTIFACTS.mkdir(exist_ok=True)
        entry.screenshot(path=str(ARTIFACTS / "domain-pending.png"))
        # Each value is one click from the clipboard.
        entry.get_by_role("button", name="Copy the value of the TXT record").click()
        expect(entry.get_by_role("button", name="Copy the value of the TXT record")).to_have_text(
            "Copied"
        )
        assert page.evaluate("navigator.clipboard.readText()") == token

        # Verify before DNS has them: the page says what DNS returned.
        entry.get_by_role("button", name=f"Verify {DOMAIN}").click()
        expect(entry.locator('[data-field="routing"]')).to_have_text("routing misconfigured")
        expect(entry.locator('[data-field="check"]')).to_contain_text(
            f"_scalemesh-challenge.{DOMAIN}"
        )
        expect(entry.locator('[data-field="check"]')).to_have_class("why")

        # Create exactly what the page showed, then verify.
        for kind, name, value in records:
            dns_server.set(name, kind, value)
        entry.get_by_role("button", name=f"Verify {DOMAIN}").click()
        expect(entry.locator('[data-field="state"]')).to_have_text("verified")
        expect(entry.locator('[data-field="routing"]')).to_have_text("routing ok")
        expect(entry.locator('[data-field="check"]')).to_have_class("found")
        expect(entry.locator('[data-field="check"]')).to_contain_text("proves ownership")
        expect(entry.get_by_role("link", name=DOMAIN)).to_have_attribute(
            "href", f"https://{DOMAIN}"
        )
        # Production's row in the deployments table (polled) lists the domain among its URLs.
        listed = page.locator("#deployments .urls a", has_text=f"https://{DOMAIN}")
        expect(listed).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "domains.png"), full_page=True)

        # Live: the proxy serves production at the name (within its half-second poll).
        site = f"http://{DOMAIN}:{proxy_port}/"
        wait_until(
            lambda: client.get(
                site.replace(DOMAIN, "127.0.0.1"), headers={"Host": DOMAIN}
            ).content.endswith(PAGE),
            what=f"the proxy serving {DOMAIN}",
        )
        visitor = browser.new_context().new_page()
        visitor.goto(site)
        expect(visitor.locator("h1")).to_have_text("The shop in production")
        visitor.context.close()

        # Removed: the proxy stops serving it.
        entry.locator("summary", has_text="Remove").click()
        entry.get_by_role("button", name=f"Remove {DOMAIN}").click()
        expect(page.locator(f'li[data-domain="{DOMAIN}"]')).to_have_count(0)
        expect(listed).to_have_count(0)
        wait_until(
            lambda: (
                client.get(site.replace(DOMAIN, "127.0.0.1"), headers={"Host": DOMAIN}).status_code
                == 404
            ),
            what=f"the proxy no longer serving {DOMAIN}",
        )
        assert errors == []
        assert re.search(r"No custom domains yet", page.content())
