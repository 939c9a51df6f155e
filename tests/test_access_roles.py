"""Roles on a project follow GitHub: each permission's role, the 60 s cache, outages, listing.

The project `site` is bound to `acme/site` by its owner `olga` (admin on GitHub). Other GitHub
users get GitHub's permission on that repository as their role; a password owner keeps full
access to their own projects without GitHub being asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app.github.oauth_api import Permission
from app.settings import Settings
from tests.support.api import bearer
from tests.support.github_users import GitHubSetup, github_app, github_settings
from tests.support.projects import create


@pytest.fixture
def gh(make_settings: Callable[..., Settings], database_url: str) -> Iterator[GitHubSetup]:
    with github_app(github_settings(make_settings, database_url)) as setup:
        setup.repo(
            "acme/site",
            grants={
                "olga": Permission.ADMIN,
                "ada": Permission.ADMIN,
                "max": Permission.MAINTAIN,
                "pat": Permission.PUSH,
                "tri": Permission.TRIAGE,
                "pul": Permission.PULL,
            },
        )
        setup.fake.add_user("eve")
        response = create(setup.client, setup.sign_in("olga"), name="site", repo="acme/site")
        assert response.status_code == 201, response.text
        assert response.json()["bound"] is True
        yield setup


@pytest.mark.parametrize(
    ("login", "role"),
    [
        ("olga", "admin"),  # the owner
        ("ada", "admin"),
        ("max", "push"),
        ("pat", "push"),
        ("tri", "pull"),
        ("pul", "pull"),
    ],
)
def test_each_github_permission_gives_its_role(gh: GitHubSetup, login: str, role: str) -> None:
    response = gh.client.get("/projects/site", headers=bearer(gh.sign_in(login)))

    assert response.status_code == 200, response.text
    assert response.json()["role"] == role
    listed = gh.client.get("/projects", headers=bearer(gh.sign_in(login))).json()
    assert [(p["slug"], p["role"]) for p in listed] == [("site", role)]


def test_a_user_of_another_org_sees_nothing_of_the_project(gh: GitHubSetup) -> None:
    token = gh.sign_in("eve")

    hidden = gh.client.get("/projects/site", headers=bearer(token))
    missing = gh.client.get("/projects/nothing-here", headers=bearer(token))

    assert hidden.status_code == 404
    assert hidden.json()["detail"] == "You have no project 'site'."
    assert missing.json()["detail"] == "You have no project 'nothing-here'."
    assert gh.client.get("/projects", headers=bearer(token)).json() == []
    assert gh.client.get("/projects/site/deployments", headers=bearer(token)).status_code == 404


def test_a_password_user_sees_only_their_own_projects(gh: GitHubSetup) -> None:
    token = gh.password_user("grace@example.com")
    calls_before = len(gh.repository_calls())
    assert create(gh.client, token, name="mine", repo="grace/mine").status_code == 201

    listed = gh.client.get("/projects", headers=bearer(token)).json()

    assert [(p["slug"], p["role"], p["bound"]) for p in listed] == [("mine", "admin", False)]
    assert gh.client.get("/projects/site", headers=bearer(token)).status_code == 404
    assert len(gh.repository_calls()) == calls_before  # no GitHub identity: nothing to ask


def test_the_owner_of_a_bound_project_loses_it_with_their_github_access(gh: GitHubSetup) -> None:
    olga = gh.sign_in("olga")
    assert gh.client.get("/projects/site", headers=bearer(olga)).json()["role"] == "admin"
    gh.fake.grant("olga", "acme/site", Permission.PULL)
    gh.clock.advance(61)
    assert gh.client.get("/projects/site", headers=bearer(olga)).json()["role"] == "pull"
    deploy = gh.client.post("/deploy", json={"project": "site"}, headers=bearer(olga))
    assert deploy.status_code == 403

    gh.fake.grant("olga", "acme/site", None)
    gh.clock.advance(61)

    assert gh.client.get("/projects/site", headers=bearer(olga)).status_code == 404
    assert gh.client.get("/projects", headers=bearer(olga)).json() == []


def test_the_owner_of_an_unbound_project_is_not_checked_with_github(gh: GitHubSetup) -> None:
    plain = gh.password_user("grace@example.com")
    assert create(gh.client, plain, name="loose", repo="acme/loose").status_code == 201
    calls_before = len(gh.repository_calls())

    response = gh.client.get("/projects/loose", headers=bearer(plain))

    assert response.json()["role"] == "admin"
    assert len(gh.repository_calls()) == calls_before


def test_lost_access_is_lost_here_within_sixty_seconds(gh: GitHubSetup) -> None:
    token = gh.sign_in("pat")
    assert gh.client.get("/projects/site", headers=bearer(token)).status_code == 200
    asked = len(gh.repository_calls())

    gh.fake.grant("pat", "acme/site", None)
    gh.clock.advance(59)
    still = gh.client.get("/projects/site", headers=bearer(token))
    assert still.status_code == 200  # remembered: GitHub is not asked again within the minute
    assert len(gh.repository_calls()) == asked

    gh.clock.advance(2)
    gone = gh.client.get("/projects/site", headers=bearer(token))
    assert gone.status_code == 404
    assert len(gh.repository_calls()) == asked + 1
    assert gh.client.get("/projects", headers=bearer(token)).json() == []


def test_gained_access_counts_after_the_cache_expires(gh: GitHubSetup) -> None:
    token = gh.sign_in("eve")
    assert gh.client.get("/projects/site", headers=bearer(token)).status_code == 404

    gh.fake.grant("eve", "acme/site", Permission.PUSH)
    gh.clock.advance(61)

    assert gh.client.get("/projects/site", headers=bearer(token)).json()["role"] == "push"


def test_a_github_outage_is_503_for_others_and_never_grants(gh: GitHubSetup) -> None:
    token = gh.sign_in("pat")
    gh.outage.down = True

    response = gh.client.get("/projects/site", headers=bearer(token))

    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    deploy = gh.client.post("/deploy", json={"project": "site"}, headers=bearer(token))
    assert deploy.status_code == 503
    # The list leaves out what GitHub could not vouch for, whoever created the project.
    assert gh.client.get("/projects", headers=bearer(token)).json() == []
    owner = gh.client.get("/projects/site", headers=bearer(gh.sign_in("olga")))
    assert owner.status_code == 503

    gh.outage.down = False
    assert gh.client.get("/projects/site", headers=bearer(token)).status_code == 200


def test_a_revoked_github_token_is_no_access(gh: GitHubSetup) -> None:
    token = gh.sign_in("pat")
    gh.fake.revoke("pat")

    assert gh.client.get("/projects/site", headers=bearer(token)).status_code == 404


def test_listing_asks_github_once_per_repository_and_remembers(gh: GitHubSetup) -> None:
    gh.repo("acme/docs", grants={"olga": Permission.ADMIN, "pat": Permission.PULL})
    gh.repo("acme/secret", grants={"olga": Permission.ADMIN})
    olga = gh.sign_in("olga")
    for name, repo in (("docs", "acme/docs"), ("docs-2", "acme/docs"), ("secret", "acme/secret")):
        assert create(gh.client, olga, name=name, repo=repo).status_code == 201
    token = gh.sign_in("pat")
    asked = len(gh.repository_calls())

    listed = gh.client.get("/projects", headers=bearer(token)).json()

    assert [(p["slug"], p["role"]) for p in listed] == [
        ("docs", "pull"),
        ("docs-2", "pull"),
        ("site", "push"),
    ]
    assert len(gh.repository_calls()) == asked + 3  # acme/site, acme/docs, acme/secret
    gh.client.get("/projects", headers=bearer(token))
    assert len(gh.repository_calls()) == asked + 3
