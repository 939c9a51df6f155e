"""Where a custom domain leads: a redirect to another domain of the project, a branch instead of
production; each change announced and stamped. And roles: who may see, who may change."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app.domains import service
from app.github.oauth_api import Permission
from app.settings import Settings
from tests.support.api import bearer, sign_up
from tests.support.dns_server import DnsServer, dns_server
from tests.support.domains import DomainsApi, api, domain_settings
from tests.support.github_users import CLIENT_ID, CLIENT_SECRET, github_app
from tests.support.projects import create

__all__ = ["api", "dns_server"]


@pytest.fixture
def ada(api: DomainsApi) -> str:
    token = sign_up(api.client, "ada@example.com")
    assert create(api.client, token, name="web").status_code == 201
    assert api.add(token, "web", "www.example.com").status_code == 201
    return token


def test_a_domain_may_redirect_to_another_domain_of_the_project(api: DomainsApi, ada: str) -> None:
    added = api.add(ada, "web", "example.com", redirect_to="WWW.example.com.")

    assert added.status_code == 201, added.text
    assert added.json()["redirect_to"] == "www.example.com"
    assert api.remove(ada, "web", "www.example.com").json() == {
        "error": "conflict",
        "detail": "example.com redirects to www.example.com; remove that domain, or clear its "
        "redirect, first.",
    }


@pytest.mark.parametrize(
    ("redirect_to", "says"),
    [
        ("not a name", "redirect_to: 'not a name' is not a domain name you can add"),
        ("example.com", "A domain cannot redirect to itself."),
        (
            "shop.example.com",
            "redirect_to must be another domain of this project (not a "
            "wildcard); add shop.example.com to it first.",
        ),
    ],
)
def test_a_redirect_must_name_another_domain_of_the_project(
    api: DomainsApi, ada: str, redirect_to: str, says: str
) -> None:
    response = api.add(ada, "web", "example.com", redirect_to=redirect_to)

    assert response.status_code == 400
    assert response.json()["detail"].startswith(says)
    assert [row["name"] for row in api.rows()] == ["www.example.com"]


def test_redirects_never_chain(api: DomainsApi, ada: str) -> None:
    assert api.add(ada, "web", "example.com", redirect_to="www.example.com").status_code == 201

    assert api.add(ada, "web", "shop.example.com").status_code == 201

    to_a_redirect = api.add(ada, "web", "example.net", redirect_to="example.com")
    target_redirects = api.change(ada, "web", "www.example.com", redirect_to="shop.example.com")

    assert to_a_redirect.status_code == 400
    assert to_a_redirect.json()["detail"] == (
        "example.com redirects to www.example.com itself; redirect to www.example.com instead."
    )
    assert target_redirects.status_code == 400
    assert target_redirects.json()["detail"] == (
        "example.com redirects to www.example.com, so it must serve, not redirect."
    )


def test_a_wildcard_is_no_redirect_target(api: DomainsApi, ada: str) -> None:
    assert api.add(ada, "web", "*.example.net").status_code == 201  # Ada is the admin

    response = api.add(ada, "web", "example.net", redirect_to="*.example.net")

    assert response.status_code == 400
    assert "(not a wildcard)" in response.json()["detail"]


def test_pinning_to_a_branch_and_back_is_announced_and_stamped(api: DomainsApi, ada: str) -> None:
    before = api.rows()[0]["updated_at"]

    pinned = api.change(ada, "web", "www.example.com", git_branch="refs/heads/staging")
    stamped = api.rows()[0]["updated_at"]
    back = api.change(ada, "web", "www.example.com", git_branch=None)
    kept = api.change(ada, "web", "www.example.com")

    assert pinned.status_code == 200, pinned.text
    assert pinned.json()["git_branch"] == "staging"
    assert stamped > before
    assert back.json()["git_branch"] is None
    assert kept.json()["git_branch"] is None
    assert api.heard == [["www.example.com"]] * 3


def test_a_domain_either_redirects_or_serves_a_branch(api: DomainsApi, ada: str) -> None:
    both = api.add(ada, "web", "example.com", redirect_to="www.example.com", git_branch="x")
    bad_branch = api.add(ada, "web", "example.com", git_branch="no..dots")
    api.add(ada, "web", "example.com", redirect_to="www.example.com")
    pinned_redirect = api.change(ada, "web", "example.com", git_branch="staging")
    switched = api.change(ada, "web", "example.com", redirect_to=None, git_branch="staging")

    assert both.status_code == 400
    assert both.json()["detail"] == (
        "A domain either redirects (redirect_to) or serves a branch (git_branch), not both."
    )
    assert bad_branch.json()["detail"] == "git_branch 'no..dots' is not a git branch name."
    assert pinned_redirect.status_code == 400
    assert switched.status_code == 200, switched.text
    assert (switched.json()["redirect_to"], switched.json()["git_branch"]) == (None, "staging")


def test_a_project_has_a_bounded_number_of_domains(
    api: DomainsApi, ada: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "MAX_DOMAINS", 2)
    assert api.add(ada, "web", "example.com").status_code == 201

    refused = api.add(ada, "web", "shop.example.com")

    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "A project may have at most 2 domains; remove one you no longer use first."
    )
    assert len(api.rows()) == 2


@pytest.fixture
def gh(
    make_settings: Callable[..., Settings], database_url: str, dns_server: DnsServer
) -> Iterator[DomainsApi]:
    settings = domain_settings(
        make_settings,
        database_url,
        dns_server,
        SCALEMESH_GITHUB_CLIENT_ID=CLIENT_ID,
        SCALEMESH_GITHUB_CLIENT_SECRET=CLIENT_SECRET,
    )
    with github_app(settings) as setup:
        setup.repo(
            "acme/site",
            grants={"olga": Permission.ADMIN, "pat": Permission.PUSH, "pul": Permission.PULL},
        )
        olga = setup.sign_in("olga")
        assert create(setup.client, olga, name="site", repo="acme/site").status_code == 201
        api = DomainsApi(setup.client, dns_server)
        assert api.add(olga, "site", "www.example.com").status_code == 201
        api.tokens = {login: setup.sign_in(login) for login in ("olga", "pat", "pul")}  # type: ignore[attr-defined]
        yield api


@pytest.mark.parametrize("login", ["pat", "pul"])
def test_members_may_see_domains_and_only_admins_change_them(gh: DomainsApi, login: str) -> None:
    token = gh.tokens[login]  # type: ignore[attr-defined]

    listed = gh.listed(token, "site")
    refused = [
        gh.add(token, "site", "shop.example.com"),
        gh.verify(token, "site", "www.example.com"),
        gh.change(token, "site", "www.example.com", git_branch="x"),
        gh.remove(token, "site", "www.example.com"),
    ]

    assert [d["name"] for d in listed.json()["domains"]] == ["www.example.com"]
    assert gh.show(token, "site", "www.example.com").status_code == 200
    assert {r.status_code for r in refused} == {403}
    assert {r.json()["detail"] for r in refused} == {
        "This needs admin access to acme/site on GitHub."
    }
    assert [row["name"] for row in gh.rows()] == ["www.example.com"]
    assert (
        gh.client.get("/projects/site/domains", headers=bearer(gh.tokens["olga"])).status_code
        == 200
    )  # type: ignore[attr-defined]
