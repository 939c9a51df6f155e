"""Every route that reads or acts on a project checks the caller's role on it.

The project `site` is bound to `acme/site` by its owner `olga`, and has one queued deployment.
`eve` cannot see the repository (none), `pul` may pull, `pat` may push, `ada` is an admin of it
on GitHub without owning the project. Each route of the table is tried at each role: below
what it needs it answers 403 (404 for someone who may not see the project at all, the same as
for a missing one) and changes nothing; at or above, it does what it does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.github.oauth_api import Permission
from app.projects.access import Role
from app.settings import Settings
from app.tables import Deployment, EnvVar, Project
from tests.support.api import bearer
from tests.support.github_users import GitHubSetup, github_app, github_settings
from tests.support.logstream import connect as connect_log
from tests.support.logstream import read_to_close, refusal
from tests.support.pages import HTML
from tests.support.projects import create

LOGIN = {Role.NONE: "eve", Role.PULL: "pul", Role.PUSH: "pat", Role.ADMIN: "ada"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """`{id}` stands for the deployment's id."""
    need: Role
    allowed: int
    """The status once access is granted."""
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    page: bool = False
    """A dashboard page or form (sent with `Accept: text/html`)."""


ROUTES = {
    "show project": Route("GET", "/projects/site", Role.PULL, 200),
    "list deployments": Route("GET", "/projects/site/deployments", Role.PULL, 200),
    "show deployment": Route("GET", "/deployments/{id}", Role.PULL, 200),
    "read log": Route("GET", "/deployments/{id}/logs", Role.PULL, 200),
    "deploy": Route("POST", "/deploy", Role.PUSH, 202, json={"project": "site"}),
    "deploy without cache": Route(
        "POST", "/deploy", Role.PUSH, 202, json={"project": "site", "clear_cache": True}
    ),
    # Still queued: nothing to compare, which is said only to those who may read it.
    "diff": Route("GET", "/deployments/{id}/diff", Role.PULL, 409),
    "cancel": Route("POST", "/deployments/{id}/cancel", Role.PUSH, 200),
    # Still queued: not promotable, which is said only to those who may promote.
    "promote": Route("POST", "/deployments/{id}/promote", Role.PUSH, 409),
    "unpin": Route("DELETE", "/projects/site/production-pin", Role.PUSH, 200),
    "write env": Route("PATCH", "/projects/site", Role.PUSH, 200, json={"env": {"A": "1"}}),
    "change settings": Route(
        "PATCH", "/projects/site", Role.ADMIN, 200, json={"build_command": "make"}
    ),
    "settings with env": Route(
        "PATCH", "/projects/site", Role.ADMIN, 200, json={"env": {"A": "1"}, "name": "x"}
    ),
    "list env": Route("GET", "/projects/site/env", Role.PULL, 200),
    "set env": Route(
        "PUT", "/projects/site/env/A", Role.PUSH, 200, json={"value": "1", "scopes": ["preview"]}
    ),
    # Nothing to delete: said only to those who may delete.
    "unset env": Route("DELETE", "/projects/site/env/A?scope=preview", Role.PUSH, 404),
    "preview ttl": Route("PATCH", "/projects/site", Role.ADMIN, 200, json={"preview_ttl_days": 1}),
    "link": Route("POST", "/projects/site/link", Role.ADMIN, 200),
    "delete": Route("DELETE", "/projects/site", Role.ADMIN, 204),
    "project page": Route("GET", "/projects/site", Role.PULL, 200, page=True),
    "deployments table": Route("GET", "/ui/projects/site/deployments", Role.PULL, 200, page=True),
    "deployment page": Route("GET", "/deployments/{id}", Role.PULL, 200, page=True),
    "deploy form": Route("POST", "/ui/projects/site/deploy", Role.PUSH, 303, form={}, page=True),
    "env form": Route(
        "POST",
        "/ui/projects/site/env",
        Role.PUSH,
        303,
        form={"name": "A", "value": "1", "branch": "staging"},
        page=True,
    ),
    "cancel form": Route("POST", "/ui/deployments/{id}/cancel", Role.PUSH, 303, form={}, page=True),
    "link form": Route("POST", "/ui/projects/site/link", Role.ADMIN, 303, form={}, page=True),
    "promote form": Route(
        "POST", "/ui/deployments/{id}/promote", Role.PUSH, 409, form={}, page=True
    ),
    "unpin form": Route("POST", "/ui/projects/site/unpin", Role.PUSH, 303, form={}, page=True),
    "redeploy without cache form": Route(
        "POST", "/ui/deployments/{id}/redeploy", Role.PUSH, 303, form={}, page=True
    ),
}


@pytest.fixture
def gh(make_settings: Callable[..., Settings], database_url: str) -> Iterator[GitHubSetup]:
    with github_app(github_settings(make_settings, database_url)) as setup:
        setup.repo(
            "acme/site",
            grants={
                "olga": Permission.ADMIN,
                "ada": Permission.ADMIN,
                "pat": Permission.PUSH,
                "pul": Permission.PULL,
            },
        )
        setup.fake.add_user("eve")
        owner = setup.sign_in("olga")
        assert create(setup.client, owner, name="site", repo="acme/site").json()["bound"]
        deployed = setup.client.post("/deploy", json={"project": "site"}, headers=bearer(owner))
        assert deployed.status_code == 202, deployed.text
        yield setup


def deployment_id(gh: GitHubSetup) -> str:
    rows = gh.client.run(lambda: Deployment.select(Deployment._meta.primary_key))
    return str(rows[0]["id"])


def snapshot(gh: GitHubSetup) -> Any:
    """Everything a refused request must leave as it was."""

    async def read() -> Any:
        projects = await Project.select().order_by(Project._meta.primary_key)
        deployments = await Deployment.select(
            Deployment._meta.primary_key, Deployment.state, Deployment.project
        ).order_by(Deployment.created_at)
        env = await EnvVar.select(EnvVar.name)
        return projects, deployments, env

    return gh.client.run(read)


def call(gh: GitHubSetup, route: Route, token: str) -> Any:
    path = route.path.replace("{id}", deployment_id(gh))
    headers = bearer(token) | (HTML if route.page else {})
    if route.form is not None:
        data = {"csrf": gh.csrf(token), **route.form}
        return gh.client.post(path, data=data, headers=headers, follow_redirects=False)
    return gh.client.request(route.method, path, json=route.json, headers=headers)


@pytest.mark.parametrize("role", [Role.NONE, Role.PULL, Role.PUSH, Role.ADMIN], ids=str)
@pytest.mark.parametrize("name", list(ROUTES))
def test_each_route_at_each_role(gh: GitHubSetup, name: str, role: Role) -> None:
    route = ROUTES[name]
    token = gh.sign_in(LOGIN[role])
    before = snapshot(gh)

    response = call(gh, route, token)

    if role >= route.need:
        assert response.status_code == route.allowed, response.text
        return
    assert response.status_code == (404 if role is Role.NONE else 403), response.text
    assert snapshot(gh) == before
    if route.page or role is not Role.PULL:
        return
    wanted = "admin" if route.need is Role.ADMIN else "push"
    assert response.json() == {
        "error": "forbidden",
        "detail": f"This needs {wanted} access to acme/site on GitHub.",
    }


def test_pages_offer_only_what_the_role_allows(gh: GitHubSetup) -> None:
    shown = {
        login: gh.client.get("/projects/site", headers=HTML | bearer(gh.sign_in(login))).text
        for login in ("pul", "pat")
    }
    assert 'action="/ui/projects/site/deploy"' not in shown["pul"]
    assert 'action="/ui/projects/site/env"' not in shown["pul"]
    assert "Changing them needs push access to acme/site on GitHub." in shown["pul"]
    assert 'action="/ui/projects/site/deploy"' in shown["pat"]
    assert 'action="/ui/projects/site/env"' in shown["pat"]
    page = f"/deployments/{deployment_id(gh)}"
    as_puller = gh.client.get(page, headers=HTML | bearer(gh.sign_in("pul"))).text
    as_pusher = gh.client.get(page, headers=HTML | bearer(gh.sign_in("pat"))).text
    assert 'id="cancel"' not in as_puller
    assert 'id="cancel"' in as_pusher


def test_the_log_socket_follows_the_same_roles(gh: GitHubSetup) -> None:
    dep = deployment_id(gh)
    cancelled = gh.client.post(f"/deployments/{dep}/cancel", headers=bearer(gh.sign_in("olga")))
    assert cancelled.status_code == 200

    with connect_log(gh.client, dep, gh.sign_in("pul")) as ws:
        events, code = read_to_close(ws)
    assert code == 1000
    assert events[-1]["type"] == "result"

    hidden = refusal(gh.client, dep, token=gh.sign_in("eve"))
    missing = refusal(gh.client, "0b7f4bd6-44a1-4d6e-9a53-f1a1a0c3b8f2", token=gh.sign_in("eve"))
    assert hidden == missing
    assert hidden[0] == 4404


def test_the_log_socket_does_not_grant_while_github_is_down(gh: GitHubSetup) -> None:
    dep = deployment_id(gh)
    gh.outage.down = True

    code, _ = refusal(gh.client, dep, token=gh.sign_in("pul"))

    assert code == 1011


def test_deploying_checks_push_afresh_once_the_cache_expires(gh: GitHubSetup) -> None:
    token = gh.sign_in("pat")
    assert gh.client.post("/deploy", json={"project": "site"}, headers=bearer(token)).is_success
    gh.fake.grant("pat", "acme/site", Permission.PULL)
    gh.clock.advance(61)
    before = snapshot(gh)

    refused = gh.client.post("/deploy", json={"project": "site"}, headers=bearer(token))

    assert refused.status_code == 403
    assert snapshot(gh) == before


def test_the_project_page_says_to_try_again_while_github_is_down(gh: GitHubSetup) -> None:
    token = gh.sign_in("pat")
    gh.outage.down = True

    response = gh.client.get("/projects/site", headers={**HTML, **bearer(token)})

    assert response.status_code == 503
    assert "Try again" in response.text
    assert "GitHub did not answer" in response.text


def test_a_project_not_on_github_cannot_be_linked(gh: GitHubSetup) -> None:
    owner = gh.sign_in("olga")
    made = create(gh.client, owner, name="plain", repo="https://git.example.com/acme/plain.git")
    assert made.status_code == 201, made.text
    asked = len(gh.repository_calls())

    response = gh.client.post("/projects/plain/link", headers=bearer(owner))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "Only a project on a GitHub repository" in response.json()["detail"]
    assert len(gh.repository_calls()) == asked
    assert gh.client.get("/projects/plain", headers=bearer(owner)).json()["bound"] is False
