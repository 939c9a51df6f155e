"""A typical static site's `vercel.json` or `netlify.toml`, built by the real builder (the
config readers, `compile_rules`) and served from what it uploaded by the proxy's rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.site import Site
from tests.support.builder import deployed, run, static_spec
from tests.support.proxy_site import get, uploaded

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def built(tmp_path: Path, files: dict[str, str | bytes]) -> Site:
    ok, sink = run(static_spec(tmp_path, files))
    assert ok, sink.lines()
    return await uploaded(deployed(tmp_path))


VERCEL_JSON = {
    "cleanUrls": True,
    "trailingSlash": False,
    "redirects": [
        {"source": "/blog/:slug", "destination": "/posts/:slug", "permanent": True},
        {"source": "/old", "destination": "https://example.com/new", "permanent": False},
    ],
    "rewrites": [{"source": "/app/(.*)", "destination": "/index.html"}],
    "headers": [
        {"source": "/(.*)", "headers": [{"key": "X-Frame-Options", "value": "DENY"}]},
        {
            "source": "/style.css",
            "headers": [{"key": "Cache-Control", "value": "public, max-age=3600"}],
        },
    ],
}


async def test_a_vercel_json_site(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "vercel.json": json.dumps(VERCEL_JSON),
        "about.html": "<h1>about</h1>",
        "posts/hello.html": "<h1>hello</h1>",
    }
    site = await built(tmp_path, files)
    answers = {
        path: (response.status, response.header("location"))
        for path in ["/about.html", "/about/", "/blog/hello", "/old", "/posts/hello"]
        for response in [await get(site, path)]
    }
    assert answers == {
        "/about.html": (308, "/about"),
        "/about/": (308, "/about"),
        "/blog/hello": (308, "/posts/hello"),
        "/old": (307, "https://example.com/new"),
        "/posts/hello": (200, None),
    }
    app = await get(site, "/app/settings")
    assert (app.status, app.header("x-frame-options")) == (200, "DENY")
    assert b"<" in app.body
    assert (await get(site, "/style.css")).header("cache-control") == "public, max-age=3600"


NETLIFY_TOML = """\
[[redirects]]
  from = "/news/*"
  to = "/blog/:splat"

[[redirects]]
  from = "/about"
  to = "/elsewhere"

[[redirects]]
  from = "/app/*"
  to = "/index.html"
  status = 200

[[headers]]
  for = "/*"
  [headers.values]
    X-Frame-Options = "DENY"
"""


async def test_a_netlify_toml_site_after_its_redirects_file(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "netlify.toml": NETLIFY_TOML,
        "_redirects": "/news/latest /blog/2024 302\n",
        "about.html": "<h1>about</h1>",
    }
    site = await built(tmp_path, files)
    latest = await get(site, "/news/latest")
    other = await get(site, "/news/2023/x")
    about = await get(site, "/about")
    app = await get(site, "/app/x")
    assert (latest.status, latest.header("location")) == (302, "/blog/2024")
    assert (other.status, other.header("location")) == (301, "/blog/2023/x")
    assert (about.status, about.body) == (200, b"<h1>about</h1>")
    assert app.status == 200
    assert app.header("x-frame-options") == "DENY"


async def test_a_set_cookie_header_fails_the_build_at_its_line(tmp_path: Path) -> None:
    config = {"headers": [{"source": "/(.*)", "headers": [{"key": "Set-Cookie", "value": "a=1"}]}]}
    ok, sink = run(static_spec(tmp_path, {"vercel.json": json.dumps(config, indent=2)}))
    assert not ok
    assert (
        "Error: vercel.json:3: headers[0]: Set-Cookie is refused: "
        "a deployment may not set or clear cookies"
    ) in sink.lines()
