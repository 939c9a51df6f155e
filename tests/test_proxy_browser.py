"""A deployment opened in a real browser through `scalemesh serve proxy`.

Debian's Chromium, headless, resolves `*.localhost` to loopback by itself, so
`http://web.localhost:<port>/` reaches the proxy with the `Host` a user's browser would send.
The page's stylesheet and module script must load (a module script with the wrong
`Content-Type` is refused under `nosniff`), and a client-side route of the single-page app
must get the app shell. The screenshot goes to `tests/artifacts/` (git-ignored).
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Response, expect

from app import database
from app.settings import Settings
from app.storage.choice import storage_from_settings
from app.tables import Alias, Deployment, Project, User
from builder import content
from builder.spec import MANIFEST, output_prefix
from proxy.asgi import HEALTH_PATH
from tests.support.browser import ARTIFACTS, chromium
from tests.support.ports import reserved_port
from tests.support.processes import cli_env, http_client, run_cli, running
from tests.support.proxy import file_entry

WAIT_MS = 20_000
DEPLOYMENT = "5a1c0de0-7e57-4b0e-9a11-b70e5e1f0a01"
CSS = "assets/app-1a2b3c4d.css"
JS = "assets/app-1a2b3c4d.js"
FILES = {
    "index.html": (
        "<!doctype html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<title>Browser check</title>\n"
        f"<link rel='stylesheet' href='/{CSS}'>\n"
        f"<script type='module' src='/{JS}'></script>\n"
        "</head>\n<body>\n<h1>Served by the Scale Mesh proxy</h1>\n<p id='route'>no script</p>\n"
        "</body>\n</html>\n"
    ).encode(),
    CSS: b"h1 { color: rgb(1, 128, 64); }\n",
    # The app's router: what a single-page app does with the path the proxy let it have.
    JS: b'document.getElementById("route").textContent = "route " + location.pathname;\n',
}


@pytest.fixture
def site_env(tmp_path: Path) -> dict[str, str]:
    """The proxy's environment, its database migrated and the app deployed.

    Done before `browser` starts: Playwright's sync API runs an event loop of its own.
    """
    env = cli_env(tmp_path / "data")
    assert run_cli("migrate", env=env).returncode == 0
    asyncio.run(deploy(Settings.from_env(env)))
    return env


@pytest.fixture
def browser(site_env: dict[str, str]) -> Iterator[Browser]:
    with chromium(WAIT_MS) as launched:
        yield launched


async def deploy(settings: Settings) -> None:
    """A ready deployment of the single-page app behind the alias `web`, as a build leaves it."""
    database.bind(database.make_engine(settings.database))
    user = await User.insert(User(email="browser@example.com", password_hash="x"))
    project = await Project.insert(
        Project(slug="web", name="web", owner=user[0]["id"], git_url="https://x/y.git")
    )
    project_id = int(project[0]["id"])
    await Deployment.insert(
        Deployment(id=DEPLOYMENT, project=project_id, sha="c" * 40, state="ready")
    )
    await Alias.insert(Alias(hostname="web", project=project_id, deployment=DEPLOYMENT))
    storage = storage_from_settings(settings.storage)
    prefix = output_prefix(project_id, DEPLOYMENT)
    records = {}
    for path, body in FILES.items():
        await storage.put(prefix + path, body)
        records[path] = file_entry(body, content.content_type(path), content.cache_control(path))
    await storage.put(prefix + MANIFEST, json.dumps({"version": 1, "files": records}).encode())


def test_a_browser_opens_a_deployment_through_the_proxy(
    site_env: dict[str, str], browser: Browser, tmp_path: Path
) -> None:
    port = reserved_port()  # uvicorn binds it, with SO_REUSEADDR
    site = f"http://web.localhost:{port}"
    args = ["serve", "proxy", "--host", "127.0.0.1", "--port", str(port)]

    with running(*args, env=site_env, logs=tmp_path / "logs") as proxy:
        with http_client() as client:
            proxy.wait_until_ok(client, f"http://127.0.0.1:{port}{HEALTH_PATH}")
        page = browser.new_page()
        loaded: dict[str, Response] = {}
        page.on("response", lambda response: loaded.setdefault(response.url, response))

        home = page.goto(f"{site}/")
        expect(page.locator("h1")).to_have_text("Served by the Scale Mesh proxy")
        expect(page.locator("#route")).to_have_text("route /")
        color = page.locator("h1").evaluate("element => getComputedStyle(element).color")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "proxy-browser.png"), full_page=True)

        deep = page.goto(f"{site}/settings/profile")
        expect(page.locator("#route")).to_have_text("route /settings/profile")
        missing = page.goto(f"{site}/assets/missing.js")
        page.close()
        exit_code = proxy.stop(signal.SIGTERM)

    statuses = [None if got is None else got.status for got in (home, deep, missing)]
    # Home; a client-side route gets the app shell; an asset with an extension does not.
    assert statuses == [200, 200, 404]
    assert loaded[f"{site}/"].headers["content-type"] == "text/html; charset=utf-8"
    assert color == "rgb(1, 128, 64)", "the stylesheet was applied"
    for asset, kind in ((CSS, "text/css"), (JS, "text/javascript")):
        response = loaded[f"{site}/{asset}"]
        assert response.status == 200
        assert response.headers["content-type"].startswith(kind)
        assert response.headers["x-content-type-options"] == "nosniff"
    assert exit_code == 0, proxy.stderr
    assert "Traceback" not in proxy.stderr
