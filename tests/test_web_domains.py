"""The project page's Domains section: add a domain, see its DNS records, verify, remove.

The checks ask a DNS server in the test; what it answers (attacker-controlled text) is shown
escaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator

import pytest

from app.settings import Settings
from app.tables import Domain
from tests.support import dns_server as dns_support
from tests.support.api import Client, serving
from tests.support.dns_server import DnsServer
from tests.support.pages import HTML, browser_signup, new_project

dns_server = dns_support.dns_server

NAME = "www.shop.example"
TARGET = "cname.localhost"
"""The default: `cname.<root domain>`."""
OUR_IP = "203.0.113.10"


@pytest.fixture
def client(
    make_settings: Callable[..., Settings], database_url: str, dns_server: DnsServer
) -> Iterator[Client]:
    # No https public URL: the test client keeps the (then Secure) cookies the forms need.
    settings = make_settings(
        SCALEMESH_DATABASE_URL=database_url,
        SCALEMESH_PUBLIC_IPS=OUR_IP,
        SCALEMESH_DNS_RESOLVERS=dns_server.resolvers,
    )
    with serving(settings) as client:
        yield client


def rows(client: Client) -> list[dict[str, object]]:
    found: list[dict[str, object]] = client.run(
        lambda: Domain.select(Domain.name, Domain.token, Domain.verified_at).order_by(Domain.name)
    )
    return found


def records(page: str, name: str) -> list[tuple[str, str, str]]:
    """The DNS records the page tells the user to create for `name`: (type, name, value)."""
    section = page.split(f'data-domain="{name}"', 1)[1].split("</li>", 1)[0]
    found = re.findall(
        r'<tr data-record="(\w+)">.*?<code class="copyable">([^<]*)</code>.*?'
        r'<code class="copyable">([^<]*)</code>',
        section,
        re.S,
    )
    return [(kind, html.unescape(host), html.unescape(value)) for kind, host, value in found]


def test_a_domain_is_added_shown_verified_and_removed(
    client: Client, dns_server: DnsServer
) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    page = client.get("/projects/my-site", headers=HTML).text
    assert 'id="domains-h">Domains</h2>' in page
    assert "No custom domains yet." in page

    added = client.post(
        "/ui/projects/my-site/domains",
        data={"csrf": csrf, "name": "WWW.Shop.Example", "redirect_to": "", "git_branch": ""},
        follow_redirects=False,
    )
    assert (added.status_code, added.headers["location"]) == (
        303,
        f"/projects/my-site#domain-{NAME}",
    )
    [row] = rows(client)
    token = str(row["token"])
    page = client.get("/projects/my-site", headers=HTML).text
    assert f'data-domain="{NAME}" data-state="pending"' in page
    assert records(page, NAME) == [
        ("TXT", f"_scalemesh-challenge.{NAME}", token),
        ("CNAME", NAME, TARGET),
        ("A", NAME, OUR_IP),
    ]
    assert f'data-copy="{token}"' in page
    assert "serves production" in page

    # Nothing in DNS yet: the page says what DNS returned, and the records stay shown.
    checked = client.post(
        f"/ui/projects/my-site/domains/{NAME}/verify", data={"csrf": csrf}, follow_redirects=False
    )
    assert checked.status_code == 303
    page = client.get("/projects/my-site", headers=HTML).text
    assert f'data-domain="{NAME}" data-state="pending" data-routing="misconfigured"' in page
    assert f"_scalemesh-challenge.{NAME}" in page.split('data-field="check">', 1)[1]

    dns_server.set(f"_scalemesh-challenge.{NAME}", "TXT", token)
    dns_server.set(NAME, "CNAME", TARGET)
    client.post(f"/ui/projects/my-site/domains/{NAME}/verify", data={"csrf": csrf})
    page = client.get("/projects/my-site", headers=HTML).text
    assert f'data-domain="{NAME}" data-state="verified" data-routing="ok"' in page
    assert f'<a href="https://{NAME}">{NAME}</a>' in page
    assert records(page, NAME) == [("CNAME", NAME, TARGET), ("A", NAME, OUR_IP)]
    assert rows(client)[0]["verified_at"] is not None

    # A redirect to it, and a branch's domain.
    client.post(
        "/ui/projects/my-site/domains",
        data={"csrf": csrf, "name": "shop.example", "redirect_to": NAME, "git_branch": ""},
    )
    client.post(
        "/ui/projects/my-site/domains",
        data={"csrf": csrf, "name": "staging.shop.example", "git_branch": "staging"},
    )
    page = client.get("/projects/my-site", headers=HTML).text
    assert f"redirects to {NAME}" in page
    assert "serves branch staging" in page

    # A refusal is shown in the section, the form kept as sent.
    in_use = client.post(f"/ui/projects/my-site/domains/{NAME}/remove", data={"csrf": csrf})
    assert in_use.status_code == 409
    assert re.search(r'role="alert" id="domains-error">[^<]*shop\.example', in_use.text)

    removed = client.post(
        "/ui/projects/my-site/domains/shop.example/remove",
        data={"csrf": csrf},
        follow_redirects=False,
    )
    assert (removed.status_code, removed.headers["location"]) == (
        303,
        "/projects/my-site#domains",
    )
    assert [row["name"] for row in rows(client)] == ["staging.shop.example", NAME]


def test_refusals_are_shown_next_to_the_form(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)

    refused = client.post(
        "/ui/projects/my-site/domains",
        data={"csrf": csrf, "name": "not a name", "redirect_to": "", "git_branch": "main"},
    )

    assert refused.status_code == 400
    assert 'id="domains-error"' in refused.text
    assert 'value="not a name"' in refused.text
    assert 'aria-invalid="true" aria-describedby="domains-error"' in refused.text
    assert rows(client) == []
    missing = client.post(f"/ui/projects/my-site/domains/{NAME}/verify", data={"csrf": csrf})
    assert missing.status_code == 404
    assert 'id="domains-error"' in missing.text


def test_forms_need_the_csrf_token_and_a_project_of_ones_own(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)

    forged = client.post("/ui/projects/my-site/domains", data={"name": NAME})
    elsewhere = client.post("/ui/projects/nope/domains", data={"csrf": csrf, "name": NAME})
    forged_remove = client.post(f"/ui/projects/my-site/domains/{NAME}/remove", data={})

    assert forged.status_code == 403
    assert forged_remove.status_code == 403
    assert elsewhere.status_code == 404
    assert rows(client) == []


def test_what_dns_answers_is_shown_as_text(client: Client, dns_server: DnsServer) -> None:
    """A TXT record is anyone's text: it reaches the page escaped."""
    csrf = browser_signup(client)
    new_project(client, csrf)
    client.post("/ui/projects/my-site/domains", data={"csrf": csrf, "name": NAME})
    dns_server.set(f"_scalemesh-challenge.{NAME}", "TXT", "<img src=x onerror=alert(1)>")

    client.post(f"/ui/projects/my-site/domains/{NAME}/verify", data={"csrf": csrf})

    page = client.get("/projects/my-site", headers=HTML).text
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
