"""Creating a project checks the creator on GitHub; re-linking and changing `repo` bind again.

`acme/site` is covered by an installation of the App; `acme/loose` is on GitHub but covered by
none. A refusal stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.github.oauth_api import Permission
from app.settings import Settings
from app.tables import Project
from tests.support.admins import make_admin
from tests.support.api import bearer
from tests.support.github_users import GitHubSetup, github_app, github_settings
from tests.support.pages import HTML
from tests.support.projects import create


@pytest.fixture
def gh(make_settings: Callable[..., Settings], database_url: str) -> Iterator[GitHubSetup]:
    with github_app(github_settings(make_settings, database_url)) as setup:
        setup.repo(
            "acme/site",
            grants={
                "ada": Permission.ADMIN,
                "max": Permission.MAINTAIN,
                "pat": Permission.PUSH,
                "tri": Permission.TRIAGE,
                "pul": Permission.PULL,
            },
        )
        setup.repo("acme/loose", covered=False, grants={"pul": Permission.PULL})
        setup.fake.add_user("eve")
        yield setup


def projects(gh: GitHubSetup) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = gh.client.run(
        lambda: Project.select(
            Project.slug, Project.github_repository, Project.github_repository_id
        ).order_by(Project.slug)
    )
    return rows


@pytest.mark.parametrize("login", ["ada", "max", "pat"])
def test_push_access_or_more_creates_a_bound_project(gh: GitHubSetup, login: str) -> None:
    response = create(gh.client, gh.sign_in(login), name="site", repo="acme/site")

    assert response.status_code == 201, response.text
    assert response.json()["bound"] is True
    assert response.json()["role"] == "admin"
    assert projects(gh) == [
        {
            "slug": "site",
            "github_repository": "acme/site",
            "github_repository_id": gh.fake.repo("acme/site").id,
        }
    ]
    assert gh.repository_calls() == ["/repos/acme/site"]


@pytest.mark.parametrize("login", ["tri", "pul"])
def test_less_than_push_access_is_refused_and_stores_nothing(gh: GitHubSetup, login: str) -> None:
    response = create(gh.client, gh.sign_in(login), name="site", repo="acme/site")

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert response.json()["detail"] == "This needs push access to acme/site on GitHub."
    assert projects(gh) == []


def test_a_repository_the_user_cannot_see_is_not_found(gh: GitHubSetup) -> None:
    response = create(gh.client, gh.sign_in("eve"), name="site", repo="acme/site")

    assert response.status_code == 404
    assert "acme/site" in response.json()["detail"]
    assert projects(gh) == []


def test_a_password_user_gets_an_unbound_project(gh: GitHubSetup) -> None:
    response = create(gh.client, gh.password_user("grace@example.com"), repo="acme/site", name="s")

    assert response.status_code == 201, response.text
    assert response.json()["bound"] is False
    assert projects(gh)[0]["github_repository_id"] is None
    assert gh.repository_calls() == []


@pytest.mark.parametrize("repo", ["acme/loose", "https://gitlab.example.com/acme/site.git"])
def test_a_repository_no_installation_covers_stays_unbound(gh: GitHubSetup, repo: str) -> None:
    response = create(gh.client, gh.sign_in("eve"), name="site", repo=repo)

    assert response.status_code == 201, response.text
    assert response.json()["bound"] is False
    assert gh.repository_calls() == []


def test_without_an_app_every_repository_is_unbound(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    with github_app(make_settings(SCALEMESH_DATABASE_URL=database_url)) as setup:
        setup.repo("acme/site", grants={})
        token = setup.password_user("ada@example.com")
        response = create(setup.client, token, name="site", repo="acme/site")

        assert response.status_code == 201, response.text
        assert response.json()["bound"] is False


def test_file_repositories_are_for_the_admin_only(gh: GitHubSetup, tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    repo = f"file://{tmp_path / 'repo'}"
    gh.password_user("root@example.com")  # the first account: the admin
    plain = gh.password_user("grace@example.com")
    github_user = gh.sign_in("ada")

    for token in (plain, github_user):
        refused = create(gh.client, token, name="local", repo=repo)
        assert refused.status_code == 403
        assert refused.json()["detail"].startswith("Only the server's admin")
    assert projects(gh) == []

    gh.client.run(lambda: make_admin("grace@example.com"))
    created = create(gh.client, plain, name="local", repo=repo)
    assert created.status_code == 201, created.text
    assert created.json()["bound"] is False
    # Nor may a non-admin point a project there later.
    mine = create(gh.client, github_user, name="site", repo="acme/site")
    assert mine.status_code == 201
    moved = gh.client.patch("/projects/site", json={"repo": repo}, headers=bearer(github_user))
    assert moved.status_code == 403
    assert projects(gh)[1]["github_repository"] == "acme/site"


def test_the_new_project_form_shows_the_refusal_next_to_the_repository(gh: GitHubSetup) -> None:
    token = gh.sign_in("pul")

    response = gh.client.post(
        "/new",
        data={
            "csrf": gh.csrf(token),
            "name": "Site",
            "repo": "acme/site",
            "production_branch": "main",
        },
        headers=bearer(token),
        follow_redirects=False,
    )

    assert response.status_code == 400
    assert "This needs push access to acme/site on GitHub." in response.text
    assert projects(gh) == []
    allowed = gh.sign_in("pat")
    made = gh.client.post(
        "/new",
        data={
            "csrf": gh.csrf(allowed),
            "name": "Site",
            "repo": "acme/site",
            "production_branch": "main",
        },
        headers=bearer(allowed),
        follow_redirects=False,
    )
    assert made.status_code == 303
    assert projects(gh)[0]["github_repository_id"] == gh.fake.repo("acme/site").id


def test_linking_binds_with_the_askers_push_access(gh: GitHubSetup) -> None:
    owner = gh.password_user("grace@example.com")
    assert create(gh.client, owner, name="site", repo="acme/site").json()["bound"] is False
    # A GitHub user who is not the owner cannot see an unbound project at all.
    assert (
        gh.client.post("/projects/site/link", headers=bearer(gh.sign_in("ada"))).status_code == 404
    )

    unlinked = gh.client.post("/projects/site/link", headers=bearer(owner))
    assert unlinked.status_code == 403
    assert unlinked.json()["detail"].startswith("Sign in with GitHub first")
    gh.link_account("grace@example.com", "pat")  # push access on GitHub
    linked = gh.client.post("/projects/site/link", headers=bearer(owner))
    assert linked.status_code == 200, linked.text
    assert linked.json()["bound"] is True
    assert projects(gh)[0]["github_repository_id"] == gh.fake.repo("acme/site").id


def test_linking_needs_push_on_github_and_admin_on_the_project(gh: GitHubSetup) -> None:
    assert create(gh.client, gh.sign_in("ada"), name="site", repo="acme/site").status_code == 201
    bound_id = projects(gh)[0]["github_repository_id"]

    as_pusher = gh.client.post("/projects/site/link", headers=bearer(gh.sign_in("pat")))
    assert as_pusher.status_code == 403  # push on GitHub is not admin on the project

    gh.fake.grant("ada", "acme/site", Permission.PULL)  # the owner stays admin here ...
    refused = gh.client.post("/projects/site/link", headers=bearer(gh.sign_in("ada")))
    assert refused.status_code == 403  # ... but cannot bind without push on GitHub
    assert projects(gh)[0]["github_repository_id"] == bound_id


def test_changing_the_repository_binds_again_or_unbinds(gh: GitHubSetup) -> None:
    other = gh.repo("acme/other", grants={"ada": Permission.ADMIN, "pat": Permission.PULL})
    token = gh.sign_in("ada")
    assert create(gh.client, token, name="site", repo="acme/site").status_code == 201

    moved = gh.client.patch("/projects/site", json={"repo": "acme/other"}, headers=bearer(token))
    assert moved.status_code == 200, moved.text
    assert projects(gh)[0]["github_repository_id"] == other

    hidden = gh.client.patch("/projects/site", json={"repo": "acme/gone"}, headers=bearer(token))
    assert hidden.status_code == 200  # no installation covers acme/gone: unbound
    assert projects(gh)[0] == {
        "slug": "site",
        "github_repository": "acme/gone",
        "github_repository_id": None,
    }

    gh.client.patch("/projects/site", json={"repo": "acme/site"}, headers=bearer(token))
    assert projects(gh)[0]["github_repository_id"] == gh.fake.repo("acme/site").id
    # A password owner changing the repository leaves it unbound.
    plain = gh.password_user("grace@example.com")
    assert create(gh.client, plain, name="plain", repo="acme/loose").status_code == 201
    gh.client.patch("/projects/plain", json={"repo": "acme/site"}, headers=bearer(plain))
    assert projects(gh)[0]["github_repository_id"] is None


def test_a_repository_change_to_one_without_push_is_refused(gh: GitHubSetup) -> None:
    gh.repo("acme/other", grants={"ada": Permission.PULL})
    token = gh.sign_in("ada")
    assert create(gh.client, token, name="site", repo="acme/site").status_code == 201

    refused = gh.client.patch("/projects/site", json={"repo": "acme/other"}, headers=bearer(token))

    assert refused.status_code == 403
    assert projects(gh)[0]["github_repository"] == "acme/site"
    page = gh.client.get("/projects/site", headers={**HTML, **bearer(token)})
    assert page.status_code == 200


def test_the_project_page_offers_linking_to_its_admin(gh: GitHubSetup) -> None:
    owner = gh.password_user("grace@example.com")
    assert create(gh.client, owner, name="site", repo="acme/site").status_code == 201
    page = gh.client.get("/projects/site", headers={**HTML, **bearer(owner)}).text
    assert "not bound" in page
    assert 'action="/ui/projects/site/link"' in page

    gh.link_account("grace@example.com", "pat")
    linked = gh.client.post(
        "/ui/projects/site/link",
        data={"csrf": gh.csrf(owner)},
        headers=bearer(owner),
        follow_redirects=False,
    )

    assert linked.status_code == 303
    assert projects(gh)[0]["github_repository_id"] == gh.fake.repo("acme/site").id
    page = gh.client.get("/projects/site", headers={**HTML, **bearer(owner)}).text
    assert 'action="/ui/projects/site/link"' not in page
