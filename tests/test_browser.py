"""The dashboard in a real browser: Debian's Chromium, headless, against `scalemesh dev`.

Sign up, create a project from a local git repository, deploy it, watch the log arrive live,
reload mid-build, see the result, and open the deployment through the proxy. Screenshots go to
`tests/artifacts/` (git-ignored); `docs/dashboard.png` and `docs/log-viewer.png` are copies.
"""

from __future__ import annotations

import re
import shlex
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute, expect

from tests.support.admins import make_admin_in_file
from tests.support.browser import ARTIFACTS, chromium
from tests.support.git import git
from tests.support.ports import reserved_port
from tests.support.processes import cli_env, running

LINES = 40
PAUSE_AFTER = 20
BUILD_SH = """\
printf '\\033[1;32mbuilding\\033[0m the <img src=x onerror=alert(1)> site\\n'
for i in $(seq 1 {lines}); do
  echo "line $i"
  # Half way, the build waits for the test to let it go on: the page is seen mid-build.
  if [ "$i" = {pause_after} ]; then while [ ! -e {gate} ]; do sleep 0.05; done; fi
done
echo "a warning" >&2
mkdir -p dist
echo '<!doctype html><h1>Hello from the browser test</h1>' > dist/index.html
"""
EMAIL = "ada@example.com"
PASSWORD = "correct horse battery"
WAIT_MS = 30_000


def make_repo(path: Path, gate: Path) -> str:
    """A site whose build prints its lines, pausing after `PAUSE_AFTER` until `gate` exists."""
    path.mkdir()
    build_sh = BUILD_SH.format(lines=LINES, pause_after=PAUSE_AFTER, gate=shlex.quote(str(gate)))
    (path / "build.sh").write_text(build_sh)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-qm", "A build that prints forty lines, pausing half way")
    return f"file://{path}"


@pytest.fixture
def gates() -> Iterator[Path]:
    """A directory the build's sandbox shows (read-only, SCALEMESH_SANDBOX_READONLY_PATHS), so
    a file the test makes there later is what lets the build go on."""
    with tempfile.TemporaryDirectory(prefix="scalemesh-gate-") as made:
        Path(made).chmod(0o755)
        yield Path(made)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium(WAIT_MS) as launched:
        yield launched


def shown_lines(page: Page) -> list[str]:
    return [
        text
        for text in page.locator("#log .line .text").all_text_contents()
        if re.fullmatch(r"line \d+", text)
    ]


def fits_the_screen(page: Page) -> bool:
    width: bool = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    return width


@pytest.mark.timeout(240)  # a real build watched in Chromium: ~20 s, far more when loaded
def test_deploy_and_follow_the_log_in_a_browser(
    browser: Browser, tmp_path: Path, gates: Path
) -> None:
    gate = gates / "go-on"
    repo = make_repo(tmp_path / "repo", gate)
    # Both ports are in the settings before the command starts: reserved, not merely free.
    api_port, proxy_port = reserved_port(), reserved_port()
    api = f"http://localhost:{api_port}"
    env = cli_env(tmp_path / "data")
    env.update(
        {
            "SCALEMESH_PUBLIC_URL": api,
            "SCALEMESH_DEPLOYMENT_URL_TEMPLATE": f"http://{{host}}:{proxy_port}",
            "SCALEMESH_RECONCILE_INTERVAL": "0.2",
            "SCALEMESH_BUILD_TIMEOUT": "60",
            "SCALEMESH_SANDBOX_READONLY_PATHS": str(gates),
        }
    )
    args = ["dev", "--api-port", str(api_port), "--proxy-port", str(proxy_port)]
    with running(*args, env=env, logs=tmp_path / "logs") as dev, httpx.Client() as client:
        dev.wait_until_ok(client, f"{api}/health")
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        # Sign up, then create the project from the local repository.
        page.goto(f"{api}/")
        expect(page).to_have_url(f"{api}/login?next=/")
        page.get_by_role("link", name="Create one").click()
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page).to_have_url(f"{api}/new")
        # Only the server's admin may build a file:// repository.
        make_admin_in_file(tmp_path / "data" / "scalemesh.sqlite3", EMAIL)
        page.get_by_label("Name").fill("Browser Site")
        page.get_by_label("Repository").fill(repo)
        page.get_by_label("Build command").fill("sh build.sh")
        page.get_by_role("button", name="Create project").click()
        expect(page).to_have_url(f"{api}/projects/browser-site")

        # A second tab on the project page sees the state change without a reload.
        watcher = context.new_page()
        watcher.goto(f"{api}/projects/browser-site")

        # The first log connection drops mid-build, as a network or a restart would drop it.
        sockets: list[str] = []

        def drop_the_first(socket: WebSocketRoute) -> None:
            sockets.append(socket.url)
            server = socket.connect_to_server()
            if len(sockets) > 1:
                return  # later ones are passed through untouched

            def relay(message: str | bytes) -> None:
                socket.send(message)
                if '"line 2"' in str(message):
                    socket.close(code=1001, reason="going away")

            server.on_message(relay)

        page.route_web_socket(re.compile(r"/logs/ws"), drop_the_first)
        page.get_by_role("button", name="Deploy", exact=True).click()
        expect(page).to_have_url(re.compile(rf"{api}/deployments/[0-9a-f-]{{36}}$"))
        deployment_url = page.url

        # Lines arrive while the build runs, across the dropped connection.
        expect(page.locator("#log .line", has_text="line 3")).to_be_visible()
        for _ in range(WAIT_MS // 100):  # the reconnect comes half a second later
            if len(sockets) == 2:
                break
            page.wait_for_timeout(100)  # Playwright's own wait: it lets the route handler run
        assert len(sockets) == 2, sockets
        assert sockets[0].endswith("?since=0")
        resumed_from = int(sockets[1].rpartition("since=")[2])
        assert resumed_from > 0
        so_far = shown_lines(page)
        assert 3 <= len(so_far) <= PAUSE_AFTER, so_far
        expect(page.locator("#banner")).to_be_hidden()
        expect(page.locator("#state")).to_have_text("building")

        # Reload mid-build: the replay and the live tail show each line once, in order.
        page.reload()
        expect(page.locator("#log .line", has_text=f"line {PAUSE_AFTER}")).to_be_visible()
        expect(page.locator("#state")).to_have_text("building")
        gate.touch()  # the build goes on
        expect(page.locator("#log .line", has_text=f"line {LINES}")).to_be_visible()
        banner = page.locator("#banner")
        expect(banner).to_contain_text("Deployment ready: http://browser-site-")
        assert len(so_far) < LINES  # the reload really happened mid-build
        assert shown_lines(page) == [f"line {n}" for n in range(1, LINES + 1)]
        expect(page.locator("#state")).to_have_text("ready")
        expect(page.locator("#took")).to_have_text(re.compile(r"^\d+\.\d s$"))  # from the API

        # ANSI colours render as styled text; markup in a log line stays text.
        first = page.locator("#log .line .text", has_text="onerror")
        expect(first).to_have_text("building the <img src=x onerror=alert(1)> site")
        assert first.locator("span.fg-32.b").inner_text() == "building"
        assert page.locator("#log img").count() == 0
        expect(page.locator("#log .line.stderr .text", has_text="warning")).to_have_text(
            "a warning"
        )
        steps = page.locator("#log details.step.ok summary").all_text_contents()
        assert any(step.startswith("build") for step in steps), steps

        # Filter, and the follow toggle pausing when the reader scrolls up.
        page.get_by_label("Filter lines").fill("line 1")
        expect(page.locator("#matches")).to_contain_text("11 of")
        page.get_by_label("Filter lines").fill("")
        page.locator("#log").evaluate("box => { box.scrollTop = 0; }")
        expect(page.get_by_label("Follow")).not_to_be_checked()
        page.locator("#log").evaluate("box => { box.scrollTop = box.scrollHeight; }")
        expect(page.get_by_label("Follow")).to_be_checked()

        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#log").evaluate("box => { box.scrollTop = 0; }")
        page.get_by_label("Filter lines").blur()
        page.screenshot(path=str(ARTIFACTS / "log-viewer.png"), full_page=True)

        # The raw log is one click away.
        with page.expect_download() as download:
            page.get_by_role("link", name="Download raw log").click()
        raw = Path(download.value.path()).read_text()
        assert f"line {LINES}" in raw
        assert "── deployment ready:" in raw

        # The project page in the other tab caught up by itself.
        expect(watcher.locator("#deployments a.badge").first).to_have_text("ready")
        expect(watcher.locator("#deployments")).to_contain_text("current production")
        watcher.screenshot(path=str(ARTIFACTS / "project.png"), full_page=True)

        # The deployment, through the proxy.
        site = banner.get_by_role("link").get_attribute("href")
        assert site is not None
        assert site.startswith("http://browser-site-")
        assert site.endswith(f".localhost:{proxy_port}")
        page.goto(site)
        expect(page.locator("h1")).to_have_text("Hello from the browser test")

        page.goto(f"{api}/")
        expect(page.locator(".card .badge")).to_have_text("ready")
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"))

        # A finished deployment's page replays its log the same way.
        page.goto(deployment_url)
        expect(page.locator("#banner")).to_contain_text("Deployment ready")
        expect(page.locator("#live")).to_have_text("finished")
        assert shown_lines(page) == [f"line {n}" for n in range(1, LINES + 1)]

        # At phone width nothing needs sideways scrolling.
        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, storage_state=context.storage_state()
        )
        small = phone.new_page()
        for path in ("/", "/projects/browser-site", deployment_url.removeprefix(api)):
            small.goto(f"{api}{path}")
            assert fits_the_screen(small), path
            name = path.strip("/").split("/")[0] or "dashboard"
            small.screenshot(path=str(ARTIFACTS / f"phone-{name}.png"), full_page=True)
        # Keyboard: the first Tab reaches the skip link, which leads to the content.
        small.keyboard.press("Tab")
        expect(small.locator(":focus")).to_have_text("Skip to content")
        phone.close()
        context.close()
        assert errors == []
        assert dev.stop(signal.SIGINT) == 0, dev.stderr
