"""Protected deployments for the proxy and API tests: the rows, cookies and tokens they need.

`protect()` turns `tests.support.proxy.seed`'s project `web` into a protected one with a branch
alias (`web-git-feature`), and `cookie()`/`handoff()` sign what the proxy and the API would.
"""

from __future__ import annotations

from typing import Any

from app import preview_tokens as tokens
from app.deployments.lifecycle import DeploymentState
from app.settings import Settings
from app.settings_parsing import key_id_of
from app.storage.choice import storage_from_settings
from app.tables import Alias, Deployment, Project
from app.users.http import SESSION_COOKIE
from proxy.asgi import running
from tests.support.api import PASSWORD, TEST_PREVIEW_KEY, Client, sign_up
from tests.support.proxy import DEPLOYMENT, INDEX, Served, ship

KEY = tokens.preview_keys([(key_id_of(TEST_PREVIEW_KEY), TEST_PREVIEW_KEY)])
BRANCH = "web-git-feature"
BRANCH_HOST = f"{BRANCH}.localhost:8080"
PRODUCTION_HOST = "web.localhost:8080"
BYPASS = "let-me-in-" + "z" * 20


async def protect(project_id: int, protection: str, *, bypass: str | None = None) -> None:
    """Set the project's protection (and bypass secret) and add the branch alias."""
    stored = None if bypass is None else tokens.bypass_hash(KEY, bypass)
    await Project.update({Project.protection: protection, Project.bypass_hash: stored}).where(
        Project._meta.primary_key == project_id
    )
    await Alias.insert(Alias(hostname=BRANCH, project=project_id, deployment=DEPLOYMENT))


def cookie(
    name: str = BRANCH, lifetime: int = tokens.COOKIE_SECONDS, now: float | None = None
) -> str:
    """The `Cookie` header the proxy's own cookie for alias `name` makes."""
    return f"{tokens.COOKIE_NAME}={tokens.sign(KEY, tokens.COOKIE, name, lifetime, now)}"


def handoff(name: str = BRANCH, now: float | None = None) -> str:
    return tokens.sign(KEY, tokens.HANDOFF, name, tokens.HANDOFF_SECONDS, now)


def browser_session(client: Client, email: str) -> None:
    """Sign up `email` and keep its session cookie in `client`, as a browser would."""
    sign_up(client, email)
    response = client.post("/user/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    assert client.cookies.get(SESSION_COOKIE)


def preview_of(client: Client, settings: Settings, slug: str) -> str:
    """A ready deployment of project `slug`, shipped to storage, behind `<slug>-git-feature`."""

    async def make() -> str:
        project = await Project.select(Project.id).where(Project.slug == slug).first()
        assert project is not None
        rows = await Deployment.insert(
            Deployment(project=project["id"], sha="a" * 40, state=DeploymentState.READY)
        )
        deployment_id = str(rows[0]["id"])
        await Alias.insert(
            Alias(hostname=f"{slug}-git-feature", project=project["id"], deployment=deployment_id)
        )
        await ship(storage_from_settings(settings.storage), project["id"], deployment_id, INDEX)
        return deployment_id

    return client.run(make)


async def through_proxy(settings: Settings, host: str, *requests: tuple[str, str]) -> list[Any]:
    """Send (path, cookie) requests to a proxy opened here, in order; their responses."""
    answers = []
    async with running(settings) as proxy:
        served = Served(proxy)
        for path, sent_cookie in requests:
            headers = {"cookie": sent_cookie} if sent_cookie else {}
            answers.append(await served.get(path, host=host, **headers))
            served.http.cookies.clear()
        await served.http.aclose()
    return answers
