"""A protected preview in a real browser: Chromium signs in with GitHub, then opens it.

The API, the proxy and a fake GitHub all serve over real HTTP. The preview belongs to a project
bound to a private repository that someone else created; the browser's GitHub user may only
read that repository. Chromium follows the proxy's redirect to the API, signs in with GitHub
(the fake approves at once), is handed back to the proxy with a short-lived token, gets the
proxy's own cookie for that one hostname, and sees the page. Another GitHub user, who cannot see
the repository, gets the API's "not found" page and never the preview.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, expect

from app.asgi import create_app
from app.deployments.lifecycle import DeploymentState
from app.github.oauth_api import Permission
from app.settings import Settings
from app.storage.choice import storage_from_settings
from app.tables import Alias, Deployment, Project, User
from proxy.asgi import HEALTH_PATH
from tests.support.api import OfflineResolver
from tests.support.asgi_httpx import HandlerApp
from tests.support.browser import ARTIFACTS, chromium
from tests.support.github_sign_in import oauth_environ
from tests.support.github_users_fake import FakeGitHubUsers
from tests.support.ports import bound_socket, port_of, reserved_port
from tests.support.processes import cli_env, http_client, running
from tests.support.proxy import ship
from tests.support.servers import uvicorn_in_thread

WAIT_MS = 30_000
PAGE = b"<!doctype html><title>Preview</title><h1>The feature preview</h1>"


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium(WAIT_MS) as launched:
        yield launched


async def protected_preview(settings: Settings, repository_id: int) -> None:
    """Project `site`, made by someone else and bound to the repository, protecting its
    previews, with a ready deployment behind `site-git-feature`."""
    owner = await User.insert(User(email="owner@example.com", password_hash=""))
    project = await Project.insert(
        Project(
            slug="site",
            name="site",
            owner=owner[0]["id"],
            github_repository="acme/site",
            github_repository_id=repository_id,
            git_url="https://github.com/acme/site.git",
            protection="previews",
        )
    )
    project_id = int(project[0]["id"])
    rows = await Deployment.insert(
        Deployment(project=project_id, sha="a" * 40, state=DeploymentState.READY)
    )
    deployment_id = str(rows[0]["id"])
    await Alias.insert(
        Alias(hostname="site-git-feature", project=project_id, deployment=deployment_id)
    )
    await ship(storage_from_settings(settings.storage), project_id, deployment_id, PAGE)


@pytest.mark.timeout(180)
def test_a_github_user_who_may_read_the_repository_opens_its_protected_preview(
    make_settings: Callable[..., Settings], database_url: str, browser: Browser, tmp_path: Path
) -> None:
    fake = FakeGitHubUsers()
    fake.add_user("octo")
    fake.add_user("eve")
    repository = fake.add_repo("acme/site", private=True)
    fake.grant("octo", "acme/site", Permission.PULL)
    api_listener, proxy_port = bound_socket(), reserved_port()
    api_url = f"http://localhost:{port_of(api_listener)}"
    preview = f"http://site-git-feature.localhost:{proxy_port}"
    with uvicorn_in_thread(HandlerApp(fake.handle)) as github:
        fake.web_url = github.url
        settings = make_settings(
            SCALEMESH_DATABASE_URL=database_url,
            SCALEMESH_PUBLIC_URL=api_url,
            SCALEMESH_DEPLOYMENT_URL_TEMPLATE=f"http://{{host}}:{proxy_port}",
            **oauth_environ(web_url=github.url, api_url=github.url),
        )
        app = create_app(settings, ref_resolver=OfflineResolver(), reconcile=False)
        # The proxy in its own process, as in production (one process binds one database).
        proxy_env = {**cli_env(tmp_path / "proxy"), **settings.sources}
        proxy_args = ["serve", "proxy", "--host", "127.0.0.1", "--port", str(proxy_port)]
        with (
            uvicorn_in_thread(app, api_listener) as api,
            running(*proxy_args, env=proxy_env, logs=tmp_path / "logs") as proxy,
        ):
            api.call(lambda: protected_preview(settings, repository.id))
            with http_client() as client:
                proxy.wait_until_ok(client, f"http://127.0.0.1:{proxy_port}{HEALTH_PATH}")

            fake.browser_user = "eve"
            stranger = browser.new_context().new_page()
            stranger.goto(f"{preview}/")
            expect(stranger).to_have_url(re.compile(re.escape(f"{api_url}/login?next=")))
            with stranger.expect_response(
                lambda r: urlsplit(r.url).path == "/auth/deployment"
            ) as last:
                stranger.get_by_role("link", name="Sign in with GitHub").click()
            stranger.wait_for_load_state()
            expect(stranger.locator("body")).not_to_contain_text("The feature preview")
            assert stranger.url.startswith(f"{api_url}/auth/deployment")
            refusals = [last.value.status]
            stranger.context.close()

            fake.browser_user = "octo"
            page = browser.new_context().new_page()
            page.goto(f"{preview}/")
            expect(page).to_have_url(re.compile(re.escape(f"{api_url}/login?next=")))
            page.get_by_role("link", name="Sign in with GitHub").click()

            expect(page).to_have_url(f"{preview}/")
            expect(page.locator("h1")).to_have_text("The feature preview")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "protected-preview.png"))
            cookies = {
                (cookie["domain"], cookie["name"]): cookie for cookie in page.context.cookies()
            }
            page.context.close()

    assert refusals == [404]
    proxy_cookies = [key for key in cookies if key[0].startswith("site-git-feature")]
    assert len(proxy_cookies) == 1, cookies
    assert cookies[proxy_cookies[0]]["httpOnly"]
    # The API's session cookie stays on the API's host; the proxy's on the preview's alone.
    assert {domain for domain, _ in cookies} == {"localhost", "site-git-feature.localhost"}
    assert [call.path for call in fake.calls_to("GET", f"/repositories/{repository.id}")]
