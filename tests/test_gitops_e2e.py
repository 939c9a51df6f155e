"""End to end: a typical `netlify.toml` site and a typical `vercel.json` site, moved over
unchanged. One push through the GitHub App builds both (two projects on one repository, each
with its root directory) in the local runner's sandbox, and the real proxy
(`scalemesh serve proxy`) serves them from storage with their own rules. What the
files ask for and Scale Mesh does not do is named in each build's log.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from proxy.asgi import HEALTH_PATH
from tests.support.api import TEST_PREVIEW_KEY, TEST_SECRET_KEY
from tests.support.git import head
from tests.support.ports import reserved_port
from tests.support.processes import cli_env, http_client, running
from tests.support.pushed_repo import PushedRepo, pushed_repo

pytestmark = pytest.mark.timeout(240)

NETLIFY_TOML = """\
# A Netlify site's file as it is: built elsewhere, published from public/.
[build]
  publish = "public"

[context.production.environment]
  SITE_ENV = "production"

[[redirects]]
  from = "/news/*"
  to = "/blog/:splat"

[[redirects]]
  from = "/docs"
  to = "https://docs.example.com/"
  status = 302
  force = true

[[redirects]]
  from = "/*"
  to = "/index.html"
  status = 200

[[headers]]
  for = "/*"
  [headers.values]
    X-Frame-Options = "DENY"

[[headers]]
  for = "/assets/*"
  [headers.values]
    Cache-Control = "public, max-age=31536000, immutable"

[[plugins]]
  package = "@netlify/plugin-sitemap"

[functions]
  directory = "netlify/functions"
"""

VERCEL_JSON = {
    "cleanUrls": True,
    "trailingSlash": False,
    "outputDirectory": "dist",
    "redirects": [
        {"source": "/blog/:slug", "destination": "/posts/:slug", "permanent": True},
        {"source": "/beta", "destination": "/", "permanent": False},
    ],
    "rewrites": [{"source": "/app/:path*", "destination": "/app.html"}],
    "headers": [
        {"source": "/(.*)", "headers": [{"key": "X-Content-Type-Options", "value": "nosniff"}]}
    ],
    "functions": {"api/*.js": {"memory": 1024}},
    "crons": [{"path": "/api/cron", "schedule": "0 5 * * *"}],
}

FILES = {
    "netlify-site/netlify.toml": NETLIFY_TOML,
    "netlify-site/public/index.html": "<h1>Netlify home</h1>",
    "netlify-site/public/_redirects": "/old /new 301\n",
    "netlify-site/public/new.html": "<h1>new</h1>",
    "netlify-site/public/assets/app.css": "body { color: #333 }",
    "vercel-site/vercel.json": json.dumps(VERCEL_JSON, indent=2),
    "vercel-site/dist/index.html": "<h1>Vercel home</h1>",
    "vercel-site/dist/about.html": "<h1>About</h1>",
    "vercel-site/dist/posts/hello.html": "<h1>Hello post</h1>",
    "vercel-site/dist/app.html": "<h1>The app shell</h1>",
}


@contextlib.contextmanager
def proxy_for(settings: Settings, logs: Path) -> Iterator[Callable[[str, str], httpx.Response]]:
    """`scalemesh serve proxy` on the API's database and storage; a GET of (host label, path)."""
    port = reserved_port()
    env = cli_env(logs / "data") | {
        "SCALEMESH_DATABASE_URL": settings.database.url.reveal(),
        "SCALEMESH_STORAGE_URL": settings.storage.url,
        "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY,
        "SCALEMESH_PREVIEW_KEY": TEST_PREVIEW_KEY,
    }
    args = ["serve", "proxy", "--host", "127.0.0.1", "--port", str(port)]
    with http_client() as client, running(*args, env=env, logs=logs) as process:
        process.wait_until_ok(client, f"http://127.0.0.1:{port}{HEALTH_PATH}")

        def get(label: str, path: str) -> httpx.Response:
            host = f"{label}.{settings.root_domain}"
            return client.get(f"http://127.0.0.1:{port}{path}", headers={"host": host})

        yield get


def built_both(site: PushedRepo) -> None:
    site.project("netlify-site", production_branch="main", root_directory="netlify-site")
    site.project("vercel-site", production_branch="main", root_directory="vercel-site")
    sha = head(site.repo)
    site.push(sha)
    for slug in ("netlify-site", "vercel-site"):
        assert site.told(sha, slug)["state"] == "success", slug


def answer(response: httpx.Response) -> tuple[int, str | None]:
    return response.status_code, response.headers.get("location")


def test_a_netlify_and_a_vercel_site_work_unchanged_through_the_real_proxy(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    with pushed_repo(make_settings, database_url, tmp_path / "repo", FILES) as site:
        built_both(site)
        [netlify] = site.deployments("netlify-site")
        [vercel] = site.deployments("vercel-site")
        netlify_log, vercel_log = site.log(netlify["id"]), site.log(vercel["id"])

        with proxy_for(site.settings, tmp_path / "proxy") as get:
            # Netlify: `_redirects` first, then the file's rules in order; a file shadows `/*`.
            assert answer(get("netlify-site", "/old")) == (301, "/new")
            assert answer(get("netlify-site", "/news/launch")) == (301, "/blog/launch")
            assert answer(get("netlify-site", "/docs")) == (302, "https://docs.example.com/")
            spa = get("netlify-site", "/dashboard/settings")
            assert (spa.status_code, spa.text) == (200, "<h1>Netlify home</h1>")
            assert spa.headers["x-frame-options"] == "DENY"
            css = get("netlify-site", "/assets/app.css")
            assert (css.status_code, css.text) == (200, "body { color: #333 }")
            assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert css.headers["x-frame-options"] == "DENY"

            # Vercel: clean URLs and trailing slashes, then redirects, then files, then rewrites.
            assert answer(get("vercel-site", "/about.html")) == (308, "/about")
            assert answer(get("vercel-site", "/about/")) == (308, "/about")
            assert answer(get("vercel-site", "/blog/hello")) == (308, "/posts/hello")
            assert answer(get("vercel-site", "/beta")) == (307, "/")
            about = get("vercel-site", "/about")
            assert (about.status_code, about.text) == (200, "<h1>About</h1>")
            assert about.headers["x-content-type-options"] == "nosniff"
            shell = get("vercel-site", "/app/projects/42")
            assert (shell.status_code, shell.text) == (200, "<h1>The app shell</h1>")

    # What was not applied is named, each feature by its name and line.
    assert "Config file: netlify-site/netlify.toml" in netlify_log
    assert "plugins" in netlify_log
    assert "functions" in netlify_log
    assert "Env: SITE_ENV (netlify-site/netlify.toml: production)" in netlify_log
    assert "Config file: vercel-site/vercel.json" in vercel_log
    warned = "Warning: vercel-site/vercel.json"
    warnings = [line for line in vercel_log.splitlines() if warned in line]
    assert any("functions" in line for line in warnings), warnings
    assert any("crons" in line for line in warnings), warnings
