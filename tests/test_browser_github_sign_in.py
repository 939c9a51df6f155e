"""Sign in with GitHub in a real browser: Chromium, the API and a fake GitHub over real HTTP.

The app talks to the fake with its real client (`SCALEMESH_GITHUB_WEB_URL` and
`SCALEMESH_GITHUB_API_URL` point at it); the browser follows the real redirects and cookies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, expect

from app.asgi import create_app
from app.settings import Settings
from app.tables import GitHubAccount, Session
from tests.support.api import OfflineResolver
from tests.support.asgi_httpx import HandlerApp
from tests.support.browser import ARTIFACTS, chromium
from tests.support.github_sign_in import oauth_environ
from tests.support.github_users_fake import FakeGitHubUsers
from tests.support.ports import bound_socket, port_of
from tests.support.servers import uvicorn_in_thread

WAIT_MS = 30_000


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium(WAIT_MS) as launched:
        yield launched


@pytest.mark.timeout(180)
def test_sign_in_with_github_in_a_browser(
    make_settings: Callable[..., Settings], database_url: str, browser: Browser
) -> None:
    # The database first: Playwright's sync API leaves an event loop running in this thread.
    fake = FakeGitHubUsers()
    octo = fake.add_user("octo")
    fake.browser_user = "octo"
    listener = bound_socket()
    app_url = f"http://127.0.0.1:{port_of(listener)}"
    with uvicorn_in_thread(HandlerApp(fake.handle)) as github:
        fake.web_url = github.url
        settings = make_settings(
            SCALEMESH_DATABASE_URL=database_url,
            SCALEMESH_PUBLIC_URL=app_url,
            **oauth_environ(web_url=github.url, api_url=github.url),
        )
        app = create_app(settings, ref_resolver=OfflineResolver(), reconcile=False)
        with uvicorn_in_thread(app, listener) as api:
            page = browser.new_page()
            page.goto(f"{app_url}/")
            expect(page).to_have_url(f"{app_url}/login?next=/")

            page.get_by_role("link", name="Sign in with GitHub").click()

            expect(page).to_have_url(f"{app_url}/")
            expect(page.get_by_role("heading", name="Projects")).to_be_visible()
            expect(page.get_by_role("button", name="Sign out")).to_be_visible()
            who = page.locator("header .who")
            expect(who).to_have_text("@octo")
            expect(who).to_have_attribute("title", f"{octo.id}+octo@users.noreply.github.com")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "github-sign-in.png"))
            cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
            assert "scalemesh_oauth_state" not in cookies
            assert cookies["scalemesh_session"]["httpOnly"]
            linked = api.call(lambda: GitHubAccount.select(GitHubAccount.login))
            assert linked == [{"login": "octo"}]
            assert api.call(lambda: Session.count()) == 1
    authorized = fake.calls_to("GET", "/login/oauth/authorize")
    assert len(authorized) == 1
    assert len(fake.calls_to("POST", "/login/oauth/access_token")) == 1
    assert len(fake.calls_to("GET", "/user")) == 1
