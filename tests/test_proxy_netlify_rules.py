"""A `netlify.toml`'s rules (with the output's `_redirects` and `_headers`) served by the real
proxy app, in Netlify's order.

The rule sets mirror the examples of Netlify's docs: default 301, placeholders and splats,
shadowing by a file unless forced, 200 rewrites, 404 pages, `_redirects` before the toml.
"""

from __future__ import annotations

import pytest

from app.settings import Settings
from tests.support.site_rules import netlify, serving

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


REDIRECTS = b"""\
# _redirects comes first
/home              /                        301
/blog/*            /news/:splat
/pricing           /plans                   302
"""

HEADERS = b"""\
/*
  X-Frame-Options: DENY
  Set-Cookie: tenant=evil; Domain=localhost
/*.css
  Cache-Control: public, max-age=600
"""

FILES = {
    "index.html": b"<h1>home</h1>",
    "about.html": b"<h1>about</h1>",
    "pricing.html": b"<h1>pricing</h1>",
    "plans.html": b"<h1>plans</h1>",
    "store-closed.html": b"<h1>closed</h1>",
    "style.css": b"body{}",
    "app/shell.html": b"<h1>shell</h1>",
    "_redirects": REDIRECTS,
    "_headers": HEADERS,
}

# As the builder writes netlify.toml's [[redirects]] and [[headers]], in file order.
TOML = netlify(
    redirects=[
        {"source": "/home", "destination": "/shadowed-by-redirects-file", "status": 301},
        {"source": "/old-path", "destination": "/new-path"},
        {"source": "/temp", "destination": "/new", "status": 302},
        {"source": "/news/:year/:month/:slug", "destination": "/blog/:year/:month/:slug"},
        {"source": "/about", "destination": "/not-here", "status": 301},
        {"source": "/pricing", "destination": "/plans", "status": 301, "force": True},
        {"source": "/app/*", "destination": "/app/shell.html", "status": 200},
        {"source": "/ecommerce/*", "destination": "/store-closed.html", "status": 404},
        {"source": "/shop/*", "destination": "https://shop.example.com/:splat", "status": 302},
        {"source": "/closed", "destination": "/store-closed.html", "status": 200, "force": True},
        {"source": "/first", "destination": "/one", "status": 302},
        {"source": "/first", "destination": "/two", "status": 302},
    ],
    headers=[
        {"source": "/*", "headers": [["X-Frame-Options", "SAMEORIGIN"]]},
        {"source": "/app/*", "headers": [["Cache-Control", "no-cache"]]},
    ],
)

# (path, status, Location or body)
TABLE: list[tuple[str, int, str]] = [
    ("/home", 301, "/"),  # `_redirects` before the toml
    ("/blog/2024/hello", 301, "/news/2024/hello"),
    ("/old-path", 301, "/new-path"),  # default status
    ("/old-path?utm=1", 301, "/new-path?utm=1"),
    ("/temp", 302, "/new"),
    ("/news/2024/05/launch", 301, "/blog/2024/05/launch"),
    ("/about", 200, "<h1>about</h1>"),  # a file shadows an unforced rule
    # The file shadows `_redirects`' unforced 302; the toml's forced 301 still wins over it.
    ("/pricing", 301, "/plans"),
    ("/app/settings/profile", 200, "<h1>shell</h1>"),  # 200: a rewrite
    ("/ecommerce/cart", 404, "<h1>closed</h1>"),  # 404: a custom not-found page
    ("/shop/hats/red", 302, "https://shop.example.com/hats/red"),
    ("/closed", 200, "<h1>closed</h1>"),
    ("/first", 302, "/one"),  # first match wins
    ("/style.css", 200, "body{}"),
]


async def test_netlify_docs_rules(settings: Settings) -> None:
    async with serving(settings, FILES, TOML) as served:
        got = []
        for path, _, _ in TABLE:
            response = await served.get(path)
            shown = response.headers.get("location") or response.content.decode()
            got.append((path, response.status_code, shown))
    assert got == TABLE


async def test_headers_join_and_set_cookie_is_refused(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(settings, FILES, TOML) as served:
        css = await served.get("/style.css")
        app = await served.get("/app/x")
    assert css.headers["x-frame-options"] == "DENY, SAMEORIGIN"
    assert css.headers["cache-control"] == "public, max-age=600"
    assert app.headers["cache-control"] == "no-cache"
    assert "set-cookie" not in css.headers
    assert "set-cookie" not in app.headers
    logged = [record for record in caplog.records if record.message == "site rules skipped"]
    assert logged
    errors = logged[0].__dict__["errors"]
    assert errors == (
        "_headers:3: Set-Cookie is refused: a deployment may not set or clear cookies",
    )
