"""GitHub Deployments name production's verified custom domain as its environment's URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.domains.dns import DnsPythonLookup
from app.domains.rechecks import check_and_store
from app.domains.records import DomainRecord
from app.settings_domains import DomainSettings
from app.tables import Domain, Project, User
from tests.support.api import bearer
from tests.support.dns_server import DnsServer, dns_server
from tests.support.github_app import App
from tests.support.webhooks import payload

__all__ = ["dns_server"]

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


async def add_domains(slug: str) -> None:
    """Domains of `slug` of every kind; only `www.example.com` and `shop.example.com` may stand
    for production, and `www` was verified first. Another project's domain is older still."""
    project = await Project.select(Project._meta.primary_key).where(Project.slug == slug).first()
    assert project is not None
    owner = await User.insert(User(email="someone@example.com", password_hash=""))
    other = await Project.insert(
        Project(slug="other", name="other", owner=owner[0]["id"], git_url="https://x.test/o.git")
    )

    def domain(name: str, verified: datetime | None, **columns: str) -> Domain:
        return Domain(
            name=name, project=project["id"], token="t" * 32, verified_at=verified, **columns
        )

    await Domain.insert(
        Domain(name="older.example.net", project=other[0]["id"], token="t", verified_at=T0),
        domain("*.example.com", T0),
        domain("staging.example.com", T0, git_branch="feature/login"),
        domain("example.com", T0, redirect_to="www.example.com"),
        domain("pending.example.com", None),
        domain("shop.example.com", T0 + timedelta(hours=2)),
        domain("www.example.com", T0 + timedelta(hours=1)),
    )


def test_production_is_reported_at_its_oldest_verified_custom_domain(app: App, token: str) -> None:
    app.client.run(lambda: add_domains("web"))

    app.deliver("push", payload("push.commits"))
    [production] = app.deployments()
    app.settle()
    app.build(str(production["id"]))

    [github_deployment] = app.github.deployments.values()
    assert github_deployment.statuses[-1]["state"] == "success"
    assert github_deployment.statuses[-1]["environment_url"] == "https://www.example.com"
    # The API lists the domains serving production among its URLs; not those that do not.
    shown = app.client.get(f"/deployments/{production['id']}", headers=bearer(token)).json()
    assert shown["aliases"][:3] == [  # each custom domain after the label it follows
        "http://web.localhost:8080",
        "https://shop.example.com",
        "https://www.example.com",
    ]
    assert not [url for url in shown["aliases"][3:] if url.startswith("https:")]

    # A preview keeps its branch's URL: custom domains stand for production only.
    body = payload("push.commits")
    body["ref"] = "refs/heads/feature/login"
    app.deliver("push", body)
    preview = next(row for row in app.deployments() if row["target"] == "preview")
    app.settle()
    app.build(str(preview["id"]))
    statuses = [deployment.statuses for deployment in app.github.deployments.values()]
    assert statuses[-1][-1]["environment_url"] == "http://web-git-feature-login.localhost:8080"
    # A branch's domain follows the branch's label.
    shown = app.client.get(f"/deployments/{preview['id']}", headers=bearer(token)).json()
    assert [url for url in shown["aliases"] if url.startswith("https:")] == [
        "https://staging.example.com"
    ]


def test_verifying_a_production_domain_reports_production_again_at_it(
    app: App, token: str, dns_server: DnsServer
) -> None:
    app.deliver("push", payload("push.commits"))
    [production] = app.deployments()
    app.settle()
    app.build(str(production["id"]))
    [github_deployment] = app.github.deployments.values()
    assert github_deployment.statuses[-1]["environment_url"] == "http://web.localhost:8080"
    told = len(github_deployment.statuses)

    async def verify() -> None:
        project = await Project.select(Project.id).where(Project.slug == "web").first()
        assert project is not None
        [row] = await Domain.insert(
            Domain(name="www.example.com", project=project["id"], token="proof-token")
        ).returning(*DomainRecord.COLUMNS)
        dns_server.set("_scalemesh-challenge.www.example.com", "TXT", "proof-token")
        settings = DomainSettings(dns_resolvers=(("127.0.0.1", dns_server.port),))
        lookup = DnsPythonLookup(settings.dns_resolvers, timeout=0.5, lifetime=1.0)

        async def heard(names: list[str]) -> None:
            pass

        checked = await check_and_store(lookup, settings, heard, DomainRecord.of(row))
        assert checked.verified_at is not None

    app.client.run(verify)
    app.report()

    # No new deploy: GitHub hears of the domain from the deployment already serving production.
    assert len(github_deployment.statuses) == told + 1
    assert github_deployment.statuses[-1]["state"] == "success"
    assert github_deployment.statuses[-1]["environment_url"] == "https://www.example.com"
