"""A site's `_redirects` and `_headers`, served from an in-memory deployment."""

from __future__ import annotations

import pytest

from builder.siterules import Rules
from tests.support.proxy_site import SITE, FakeDeployment, get, make

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- _redirects ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "path", "status", "location"),
    [
        ("/old /new", "/old", 301, "/new"),
        ("/old /new 301", "/old/", 301, "/new"),
        ("/old /new 302", "/old", 302, "/new"),
        ("/old /new 307", "/old", 307, "/new"),
        ("/old /new 308", "/old", 308, "/new"),
        ("/old /new 303", "/old", 303, "/new"),
        ("/old /new", "/old?a=1&b=2", 301, "/new?a=1&b=2"),
        ("/old /new?ref=x 302", "/old?a=1", 302, "/new?ref=x&a=1"),
        ("/old https://example.com/new 301", "/old?q=1", 301, "https://example.com/new?q=1"),
        ("/news/* /blog/:splat", "/news/2024/hello", 301, "/blog/2024/hello"),
        ("/news/* /blog/:splat", "/news", 301, "/blog/"),
        ("/news/* https://n.example/:splat 302", "/news/a%20b", 302, "https://n.example/a%20b"),
        ("/u/:id/posts/:post /p/:post?by=:id", "/u/7/posts/9", 301, "/p/9?by=7"),
        ("/u/:id /people/:id", "/u/a%2Bb", 301, "/people/a%2Bb"),
        ("/* /maintenance.html 302", "/anything", 302, "/maintenance.html"),
        ("/ /home 302!", "/", 302, "/home"),
        ("/old https://example.com:8443/x 301", "/old", 301, "https://example.com:8443/x"),
        ("/old /new#top 301", "/old", 301, "/new#top"),
        ("/old /caf\u00e9-menu 301", "/old", 301, "/caf%C3%A9-menu"),
        ("/old /a%20b 301", "/old", 301, "/a%20b"),
        ("/x/:a/:a /y/:a", "/x/1/2", 301, "/y/1"),
        ("/x/:splat /y/:splat", "/x/1", 301, "/y/:splat"),  # `splat` names only `*`
        ("/x /y/:unmatched", "/x", 301, "/y/:unmatched"),
    ],
)
async def test_redirect_rules(rules: str, path: str, status: int, location: str) -> None:
    response = await get(await make(redirects=rules), path)
    assert response.status == status
    assert response.header("location") == location
    assert response.header("x-content-type-options") == "nosniff"


async def test_a_splat_cannot_make_a_protocol_relative_location() -> None:
    site = await make(redirects="/go/* /:splat 302")
    response = await get(site, "/go//evil.example/x")
    assert response.header("location") == "/evil.example/x"


async def test_first_matching_rule_wins_and_comments_are_skipped() -> None:
    rules = "# moved\n\n/a /first 302\n  # indented comment\n/a /second 302\n"
    response = await get(await make(redirects=rules), "/a")
    assert response.header("location") == "/first"


async def test_existing_file_shadows_an_unforced_rule() -> None:
    site = await make(redirects="/about /elsewhere 301\n/docs/* /x 302")
    assert (await get(site, "/about")).status == 200
    assert (await get(site, "/docs/")).status == 200
    assert (await get(site, "/docs/other")).header("location") == "/x"


async def test_forced_rule_wins_over_an_existing_file() -> None:
    site = await make(redirects="/about /elsewhere 301!")
    response = await get(site, "/about")
    assert (response.status, response.header("location")) == (301, "/elsewhere")


async def test_forced_rule_without_status_defaults_to_301() -> None:
    site = await make(redirects="/about /elsewhere !")
    assert (await get(site, "/about")).status == 301


async def test_rewrite_serves_another_file_at_the_same_url() -> None:
    site = await make(redirects="/guide /docs/guide.html 200\n/app/* /index.html 200")
    guide = await get(site, "/guide")
    assert (guide.status, guide.body) == (200, b"<h1>guide</h1>")
    assert guide.header("location") is None
    app = await get(site, "/app/settings")
    assert (app.status, app.body) == (200, b"<h1>home</h1>")


async def test_rewrite_with_splat_and_clean_target() -> None:
    site = await make(redirects="/v1/* /docs/:splat 200\n/d /docs 200")
    assert (await get(site, "/v1/guide")).body == b"<h1>guide</h1>"
    assert (await get(site, "/v1/")).body == b"<h1>docs</h1>"
    assert (await get(site, "/d")).body == b"<h1>docs</h1>"


async def test_forced_rewrite_over_an_existing_file() -> None:
    site = await make(redirects="/about /docs/guide.html 200!")
    assert (await get(site, "/about")).body == b"<h1>guide</h1>"


async def test_rewrite_to_a_missing_file_falls_through() -> None:
    site = await make({**SITE, "404.html": b"lost"}, redirects="/x /nowhere.html 200")
    response = await get(site, "/x")
    assert (response.status, response.body) == (404, b"lost")


async def test_rewrite_splat_is_decoded_exactly_once() -> None:
    files = {"public/a b.txt": b"spaced", "public/a%20b.txt": b"literal"}
    site = await make(files, redirects="/files/* /public/:splat 200")
    assert (await get(site, "/files/a%20b.txt")).body == b"spaced"


async def test_rewrite_target_with_a_hostile_value_is_ignored() -> None:
    site = await make(redirects="/x/:name /%2e%2e/:name 200")
    response = await get(site, "/x/secret")
    assert (response.status, response.body) == (200, b"<h1>home</h1>")  # the SPA fallback


async def test_custom_404_rule() -> None:
    files = {**SITE, "blog/404.html": b"blog lost", "blog/post.html": b"post"}
    site = await make(files, redirects="/blog/* /blog/404.html 404")
    missing = await get(site, "/blog/nope")
    assert (missing.status, missing.body) == (404, b"blog lost")
    assert (await get(site, "/blog/post")).body == b"post"
    # Not a redirect: no ETag games on an error page either.
    assert missing.header("etag") is None


async def test_custom_404_rule_to_a_missing_page_is_the_branded_404() -> None:
    site = await make(redirects="/* /missing.html 404")
    response = await get(site, "/nope")
    assert response.status == 404
    assert b"Scale Mesh" in response.body


def test_unusable_redirect_lines_are_reported_and_skipped() -> None:
    rules = Rules.parse(
        "\n".join(
            [
                "/only-one-field",
                "/a /b 302 extra=field",
                "/a /b 418",
                "/a /b abc",
                "relative /b",
                "/a relative",
                "/a https://evil.example/ 200",
                "/a/*/b /c",
                "/ok /fine 302",
            ]
        )
    )
    assert [rule.source for rule in rules.redirects] == ["/ok"]
    assert [error.split(":")[1] for error in rules.errors] == [str(n) for n in range(1, 9)]
    assert all(error.startswith("_redirects:") for error in rules.errors)


async def test_a_site_without_rules_files() -> None:
    site = await make()
    assert site.rules == Rules()
    assert (await get(site, "/")).status == 200


async def test_rules_files_are_read_once_at_load() -> None:
    deployment = FakeDeployment({"index.html": b"i", "_redirects": b"/a /b", "_headers": b""})
    site = await deployment.site()
    assert sorted(deployment.reads) == ["_headers", "_redirects"]
    await get(site, "/a")
    assert sorted(deployment.reads) == ["_headers", "_redirects"]


async def test_a_rules_file_with_bad_bytes_still_loads() -> None:
    deployment = FakeDeployment({"index.html": b"i", "_redirects": b"/a /b 302\n\xff\xfe /c"})
    site = await deployment.site()
    assert (await get(site, "/a")).header("location") == "/b"


# --- _headers ------------------------------------------------------------------------------

HEADERS = """
# security for everything
/*
  X-Frame-Options: DENY
  Link: </style.css>; rel=preload
  Link: </app.js>; rel=preload

/docs/*
  Cache-Control: public, max-age=60
  X-Section: docs

/docs/:page
  X-Page: yes

/*.png
  X-Image: 1
"""


async def test_headers_apply_by_path_and_combine() -> None:
    site = await make(headers=HEADERS)
    guide = await get(site, "/docs/guide")
    assert guide.header("x-frame-options") == "DENY"
    assert guide.header("x-section") == "docs"
    assert guide.header("x-page") == "yes"
    assert guide.header("link") == "</style.css>; rel=preload, </app.js>; rel=preload"
    home = await get(site, "/")
    assert home.header("x-frame-options") == "DENY"
    assert home.header("x-section") is None
    assert (await get(site, "/logo.png")).header("x-image") == "1"
    assert (await get(site, "/data.txt")).header("x-image") is None


async def test_headers_override_cache_control_once() -> None:
    site = await make(headers=HEADERS)
    response = await get(site, "/docs/guide")
    values = [value for name, value in response.headers if name == "cache-control"]
    assert values == ["public, max-age=60"]


async def test_same_header_in_several_blocks_is_joined() -> None:
    site = await make(headers="/*\n  X-Tag: a\n/about\n  X-Tag: b\n")
    assert (await get(site, "/about")).header("x-tag") == "a, b"


async def test_headers_also_apply_to_404s_and_redirects() -> None:
    site = await make(redirects="/old /new", headers="/*\n  X-Frame-Options: DENY")
    assert (await get(site, "/old")).header("x-frame-options") == "DENY"
    assert (await get(site, "/x.png")).header("x-frame-options") == "DENY"


def test_unusable_header_lines_are_reported_and_skipped() -> None:
    rules = Rules.parse(
        headers_text="\n".join(
            [
                "X-Orphan: 1",
                "/a",
                "  no colon here",
                "  Bad Name: 1",
                "  Content-Length: 5",
                "  Content-Encoding: br",
                "  ETag: x",
                "  X-Bad: caf\u00e9",
                "  X-Good: 1",
                "/empty",
            ]
        )
    )
    assert [(rule.source, rule.headers) for rule in rules.headers] == [("/a", (("X-Good", "1"),))]
    assert [error.split(":")[1] for error in rules.errors] == ["1", "3", "4", "5", "6", "7", "8"]


def test_per_host_header_blocks_are_dropped_whole() -> None:
    text = "https://blog.example.com/*\n  X-Host: 1\n/*\n  X-All: 1\n"
    rules = Rules.parse(headers_text=text)
    assert [rule.source for rule in rules.headers] == ["/*"]
    assert rules.headers_for("/x") == [("X-All", "1")]
    assert rules.errors == ("_headers:1: per-host header rules are not supported",)


def test_an_empty_block_is_dropped() -> None:
    rules = Rules.parse(headers_text="/a\n/b\n  X-B: 1\n")
    assert [rule.source for rule in rules.headers] == ["/b"]
