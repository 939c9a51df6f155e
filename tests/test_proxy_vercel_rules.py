"""A `vercel.json`'s rules served by the real proxy app, in Vercel's order.

The rule sets mirror the examples of Vercel's docs (redirects, rewrites, headers, cleanUrls,
trailingSlash, has/missing); each row is one request and what it must get.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.settings import Settings
from tests.support.site_rules import serving, vercel

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


FILES = {
    "index.html": b"<h1>home</h1>",
    "about.html": b"<h1>about</h1>",
    "about-our-company.html": b"<h1>company</h1>",
    "profile.html": b"<h1>profile</h1>",
    "docs/index.html": b"<h1>docs</h1>",
    "documentation/intro.html": b"<h1>intro</h1>",
    "service-worker.js": b"self.x = 1",
    "assets/app.js": b"app()",
    "logo.png": b"\x89PNG",
    "404.html": b"<h1>lost</h1>",
}

# As the builder writes vercel.json's rules: `permanent` became 308/307, `statusCode` kept.
DOCS = vercel(
    redirects=[
        {"source": "/me", "destination": "/profile.html", "status": 307},
        {
            "source": "/view-source",
            "destination": "https://github.com/vercel/vercel",
            "status": 308,
        },
        {"source": "/blog/:slug", "destination": "/news/:slug", "status": 308},
        {"source": "/old-blog/:path*", "destination": "/blog/:path*", "status": 301},
        {"source": "/post/:id(\\d{1,})", "destination": "/p/:id?from=post", "status": 302},
        {"source": "/go/(.*)", "destination": "/$1", "status": 307},
        {
            "source": "/about",
            "destination": "/never",
            "status": 307,
            "has": [{"type": "query", "key": "legacy"}],
        },
        {
            "source": "/shop/:path*",
            "destination": "/uk/shop/:path*",
            "status": 307,
            "has": [{"type": "header", "key": "x-country", "value": "GB"}],
        },
        {
            "source": "/dashboard",
            "destination": "/login",
            "status": 307,
            "missing": [{"type": "cookie", "key": "session"}],
        },
        {
            "source": "/v/:rest*",
            "destination": "/version/:ver/:rest*",
            "status": 307,
            "has": [{"type": "cookie", "key": "pinned", "value": "(?<ver>v\\d+)"}],
        },
        {
            "source": "/moved/:path*",
            "destination": "https://web.example/:path*",
            "status": 308,
            "has": [{"type": "host", "value": "www\\.web\\.dev"}],
        },
    ],
    rewrites=[
        {"source": "/about", "destination": "/about-our-company.html"},
        {"source": "/docs/:path*", "destination": "/documentation/:path*.html"},
        {"source": "/resize/:width/:height", "destination": "/api/sharp"},
        {"source": "/logo.png", "destination": "/about-our-company.html"},
        {"source": "/app/(.*)", "destination": "/index.html"},
    ],
    headers=[
        {
            "source": "/service-worker.js",
            "headers": [["Cache-Control", "public, max-age=0, must-revalidate"]],
        },
        {
            "source": "/(.*)",
            "headers": [["X-Frame-Options", "DENY"], ["X-XSS-Protection", "1; mode=block"]],
        },
        {
            "source": "/:path*",
            "has": [{"type": "query", "key": "authorized"}],
            "headers": [["x-authorized", "true"]],
        },
        {
            "source": "/assets/:file",
            "headers": [
                ["Cache-Control", "public, max-age=31536000, immutable"],
                ["X-Asset", ":file"],
            ],
        },
        {"source": "/(.*)", "headers": [["X-Frame-Options", "SAMEORIGIN"]]},
    ],
)

# (path, request headers, status, Location or body)
DOCS_TABLE: list[tuple[str, dict[str, str], int, str]] = [
    # redirects, first match; permanent → 308, false → 307, statusCode as given
    ("/me", {}, 307, "/profile.html"),
    ("/view-source", {}, 308, "https://github.com/vercel/vercel"),
    ("/blog/hello-world", {}, 308, "/news/hello-world"),
    ("/blog/a/b", {}, 404, "<h1>lost</h1>"),  # one segment only
    ("/old-blog/2024/post", {}, 301, "/blog/2024/post"),
    ("/old-blog", {}, 301, "/blog/"),
    ("/post/42", {}, 302, "/p/42?from=post"),
    ("/post/42?utm=x", {}, 302, "/p/42?from=post&utm=x"),  # the request's query goes along
    ("/post/abc", {}, 404, "<h1>lost</h1>"),
    ("/go//evil.example/x", {}, 307, "/evil.example/x"),
    # has / missing
    ("/about?legacy=1", {}, 307, "/never?legacy=1"),
    ("/shop/hats", {"x-country": "GB"}, 307, "/uk/shop/hats"),
    ("/shop/hats", {"x-country": "FR"}, 404, "<h1>lost</h1>"),
    ("/dashboard", {}, 307, "/login"),
    ("/dashboard", {"cookie": "session=abc"}, 404, "<h1>lost</h1>"),
    ("/v/a/b", {"cookie": "pinned=v2"}, 307, "/version/v2/a/b"),
    ("/moved/x", {"host": "www.web.dev"}, 308, "https://web.example/x"),
    ("/moved/x", {}, 404, "<h1>lost</h1>"),
    # the filesystem; `/about` is not `about.html` without cleanUrls: the rewrite answers
    ("/about.html", {}, 200, "<h1>about</h1>"),
    ("/about", {}, 200, "<h1>company</h1>"),
    ("/docs", {}, 200, "<h1>docs</h1>"),  # a directory's index is a file
    ("/docs/intro", {}, 200, "<h1>intro</h1>"),
    ("/logo.png", {}, 200, "\x89PNG"),  # a file shadows a rewrite
    ("/app/settings/profile", {}, 200, "<h1>home</h1>"),
    ("/resize/10/20", {}, 404, "<h1>lost</h1>"),  # a rewrite to nothing: the 404 page
    ("/nowhere.png", {}, 404, "<h1>lost</h1>"),
]


async def test_vercel_docs_rules(settings: Settings) -> None:
    async with serving(settings, FILES, DOCS) as served:
        got = []
        for path, headers, _, _ in DOCS_TABLE:
            response = await served.get(path, **headers)
            shown = response.headers.get("location") or response.content.decode("latin-1")
            got.append((path, headers, response.status_code, shown))
    assert got == DOCS_TABLE


async def test_vercel_headers_accumulate_and_later_rules_win(settings: Settings) -> None:
    async with serving(settings, FILES, DOCS) as served:
        worker = await served.get("/service-worker.js")
        asset = await served.get("/assets/app.js?authorized")
        redirect = await served.get("/me")
        missing = await served.get("/nowhere")
    assert worker.headers["cache-control"] == "public, max-age=0, must-revalidate"
    assert worker.headers["x-frame-options"] == "SAMEORIGIN"
    assert worker.headers["x-xss-protection"] == "1; mode=block"
    assert "x-authorized" not in worker.headers
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert asset.headers["x-asset"] == "app.js"
    assert asset.headers["x-authorized"] == "true"
    assert asset.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert missing.headers["x-frame-options"] == "SAMEORIGIN"
    assert redirect.headers["x-frame-options"] == "SAMEORIGIN"


PAGES = {
    "index.html": b"home",
    "about.html": b"about",
    "docs/index.html": b"docs",
    "docs/guide.html": b"guide",
    "data.json": b"{}",
}


@pytest.mark.parametrize(
    ("clean_urls", "trailing_slash", "table"),
    [
        (
            True,
            None,
            [
                ("/about.html", 308, "/about"),
                ("/about.html?x=1", 308, "/about?x=1"),
                ("/about", 200, "about"),
                ("/index.html", 308, "/"),
                ("/index", 308, "/"),
                ("/docs/index.html", 308, "/docs"),
                ("/docs", 200, "docs"),
                ("/docs/", 200, "docs"),
                ("/docs/guide", 200, "guide"),
                ("/data.json", 200, "{}"),
            ],
        ),
        (
            True,
            True,
            [
                ("/about.html", 308, "/about/"),
                ("/about", 308, "/about/"),
                ("/about/", 200, "about"),
                ("/docs/index.html", 308, "/docs/"),
                ("/docs/guide/", 200, "guide"),
                ("/data.json", 200, "{}"),
                ("/data.json/", 308, "/data.json"),
                ("/", 200, "home"),
            ],
        ),
        (
            False,
            True,
            [
                ("/docs", 308, "/docs/"),
                ("/docs/", 200, "docs"),
                ("/about.html", 200, "about"),
                # No cleanUrls: `about` names no file (Scale Mesh's single-page-app fallback).
                ("/about/", 200, "home"),
                ("/nope.txt", 404, "404"),
            ],
        ),
        (
            False,
            False,
            [
                ("/docs/", 308, "/docs"),
                ("/docs", 200, "docs"),
                ("/docs/guide.html/", 308, "/docs/guide.html"),
                ("/", 200, "home"),
                ("/about.html", 200, "about"),
            ],
        ),
    ],
)
async def test_clean_urls_and_trailing_slash(
    settings: Settings,
    clean_urls: bool,
    trailing_slash: bool | None,
    table: list[tuple[str, int, str]],
) -> None:
    rules = vercel(clean_urls=clean_urls, trailing_slash=trailing_slash)
    async with serving(settings, PAGES, rules) as served:
        got = []
        for path, _, _ in table:
            response = await served.get(path)
            shown = response.headers.get("location") or response.content.decode()
            got.append(
                (path, response.status_code, "404" if response.status_code == 404 else shown)
            )
    assert got == table


async def test_answers_that_read_cookies_are_not_replayed(settings: Settings) -> None:
    async with serving(settings, FILES, DOCS) as served:
        first = await served.get("/dashboard")
        second = await served.get("/dashboard", cookie="session=1")
        third = await served.get("/dashboard")
    assert [first.status_code, second.status_code, third.status_code] == [307, 404, 307]


async def test_rules_that_do_not_compile_are_logged_and_the_site_still_served(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    bad: dict[str, Any] = vercel(
        redirects=[{"source": "/a", "destination": "/b", "status": 308}],
        headers=[{"source": "/(.*)", "headers": [["Set-Cookie", "tenant=evil; Domain=localhost"]]}],
    )
    async with serving(settings, FILES, bad) as served:
        home = await served.get("/")
        moved = await served.get("/a")
    assert (home.status_code, home.content) == (200, b"<h1>home</h1>")
    assert "set-cookie" not in home.headers
    assert moved.status_code == 404, "the rules are dropped whole, not in part"
    logged = [record for record in caplog.records if record.message == "site rules skipped"]
    assert logged
    assert "headers[0]: Set-Cookie is refused" in str(logged[0].__dict__["errors"])
