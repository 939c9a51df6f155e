"""A deployment's static-hosting rules, served from an in-memory deployment."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from typing import Any

import pytest

from builder.content import cache_control, content_type
from proxy.routing import path_to_key
from proxy.serve import ProxyRequest, ProxyResponse, Rules, Site, respond

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeDeployment:
    """A manifest and the files behind it, as the builder would have uploaded them."""

    def __init__(self, files: Mapping[str, bytes], compressed: tuple[str, ...] = ()) -> None:
        self.objects: dict[str, bytes] = dict(files)
        self.reads: list[str] = []
        records: dict[str, Any] = {}
        for path, data in files.items():
            encodings = []
            if path in compressed:
                # Stand-ins: the proxy never decodes, so any distinct bytes will do.
                self.objects[path + ".br"] = b"BR:" + data
                self.objects[path + ".gz"] = gzip.compress(data, mtime=0)
                encodings = ["br", "gzip"]
            records[path] = {
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "content_type": content_type(path),
                "cache_control": cache_control(path),
                "encodings": encodings,
            }
        records[".scalemesh/manifest.json"] = {"size": 2, "sha256": "0" * 64}
        self.objects[".scalemesh/manifest.json"] = b"{}"
        self.manifest: dict[str, Any] = {"version": 1, "files": records}

    async def read(self, key: str) -> bytes:
        self.reads.append(key)
        try:
            return self.objects[key]
        except KeyError:
            raise FileNotFoundError(key) from None

    async def site(self) -> Site:
        return await Site.load(self.manifest, self.read)


SITE = {
    "index.html": b"<h1>home</h1>",
    "about.html": b"<h1>about</h1>",
    "docs/index.html": b"<h1>docs</h1>",
    "docs/guide.html": b"<h1>guide</h1>",
    "assets/app-Bx7a9kQ2.js": b"console.log(1)",
    "logo.png": b"\x89PNG....",
    "data.txt": b"0123456789",
}


async def get(
    site: Site,
    path: str,
    *,
    method: str = "GET",
    query: str = "",
    accept_encoding: str = "",
    if_none_match: str = "",
    range: str = "",
    if_range: str = "",
) -> ProxyResponse:
    raw, _, raw_query = path.partition("?")
    request = ProxyRequest(
        method=method,
        key=path_to_key(raw),
        query=query or raw_query,
        accept_encoding=accept_encoding,
        if_none_match=if_none_match,
        range=range,
        if_range=if_range,
    )
    return await respond(request, site)


async def make(
    files: Mapping[str, bytes] = SITE,
    *,
    redirects: str | None = None,
    headers: str | None = None,
    compressed: tuple[str, ...] = (),
) -> Site:
    everything = dict(files)
    if redirects is not None:
        everything["_redirects"] = redirects.encode()
    if headers is not None:
        everything["_headers"] = headers.encode()
    return await FakeDeployment(everything, compressed).site()


def etag_of(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()[:32]}"'


# --- files, indexes and clean URLs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/", b"<h1>home</h1>"),
        ("/index", b"<h1>home</h1>"),
        ("/about", b"<h1>about</h1>"),
        ("/docs/", b"<h1>docs</h1>"),
        ("/docs/guide", b"<h1>guide</h1>"),
        ("/assets/app-Bx7a9kQ2.js", b"console.log(1)"),
        ("/data.txt", b"0123456789"),
    ],
)
async def test_files_indexes_and_clean_urls(path: str, body: bytes) -> None:
    response = await get(await make(), path)
    assert (response.status, response.body) == (200, body)
    assert response.header("content-length") == str(len(body))


async def test_headers_come_from_the_manifest() -> None:
    site = await make()
    script = await get(site, "/assets/app-Bx7a9kQ2.js")
    assert script.header("content-type") == "text/javascript; charset=utf-8"
    assert script.header("cache-control") == "public, max-age=31536000, immutable"
    page = await get(site, "/about")
    assert page.header("content-type") == "text/html; charset=utf-8"
    assert page.header("cache-control") == "public, max-age=0, must-revalidate"
    assert page.header("etag") == etag_of(b"<h1>about</h1>")
    assert page.header("accept-ranges") == "bytes"


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/about.html", "/about"),
        ("/about.html?x=1&y=2", "/about?x=1&y=2"),
        ("/docs/guide.html", "/docs/guide"),
        ("/index.html", "/"),
        ("/index.html?q", "/?q"),
        ("/docs/index.html", "/docs/"),
        ("/docs", "/docs/"),
        ("/docs?page=2", "/docs/?page=2"),
    ],
)
async def test_canonical_urls_redirect_with_308(path: str, location: str) -> None:
    response = await get(await make(), path)
    assert response.status == 308
    assert response.header("location") == location
    assert response.body == b""


async def test_html_file_is_served_when_its_clean_url_is_another_file() -> None:
    site = await make({"notes": b"plain", "notes.html": b"<p>html</p>"})
    assert (await get(site, "/notes.html")).body == b"<p>html</p>"
    assert (await get(site, "/notes")).body == b"plain"


async def test_canonical_redirect_percent_encodes_the_location() -> None:
    site = await make({"a b.html": b"x", "index.html": b"i"})
    response = await get(site, "/a%20b.html")
    assert response.header("location") == "/a%20b"


async def test_no_directory_listing() -> None:
    site = await make({"404.html": b"nope", "photos/a.jpg": b"jpg"})
    response = await get(site, "/photos/")
    assert (response.status, response.body) == (404, b"nope")


# --- not found, 404.html and the single-page-app fallback -----------------------------------


async def test_top_level_404_html() -> None:
    site = await make({**SITE, "404.html": b"<h1>lost</h1>"})
    for path in ("/missing", "/missing.png", "/docs/missing/"):
        response = await get(site, path)
        assert (response.status, response.body) == (404, b"<h1>lost</h1>")
        assert response.header("content-type") == "text/html; charset=utf-8"
        assert response.header("etag") is None


async def test_spa_fallback_without_404_html() -> None:
    site = await make()
    for path in ("/settings/profile", "/users/42/", "/deep/route"):
        response = await get(site, path)
        assert (response.status, response.body) == (200, b"<h1>home</h1>")


async def test_spa_fallback_leaves_assets_404() -> None:
    response = await get(await make(), "/assets/missing-chunk.js")
    assert response.status == 404
    assert b"Scale Mesh" in response.body
    assert response.header("content-type") == "text/html; charset=utf-8"


async def test_branded_404_without_index_or_404_html() -> None:
    response = await get(await make({"a.txt": b"a"}), "/nothing")
    assert response.status == 404
    assert response.body.startswith(b"<!doctype html>")
    assert b"Page not found" in response.body
    assert response.header("content-length") == str(len(response.body))
    assert response.header("x-content-type-options") == "nosniff"


async def test_nested_404_html_is_not_the_site_404() -> None:
    site = await make({"docs/404.html": b"docs lost", "index.html": b"home"})
    assert (await get(site, "/docs/missing.css")).body != b"docs lost"


# --- hidden files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/_redirects",
        "/_headers",
        "/.scalemesh/manifest.json",
        "/.scalemesh/",
        "/.scalemesh",
    ],
)
async def test_hidden_files_are_never_served(path: str) -> None:
    site = await make(redirects="/old /new 301\n/* /index.html 200", headers="/*\n  X-A: 1")
    response = await get(site, path)
    assert response.status == 404
    assert b"/old" not in response.body
    assert b"X-A" not in response.body
    assert b"{}" not in response.body


async def test_a_rewrite_cannot_reach_hidden_files() -> None:
    site = await make(redirects="/peek /_redirects 200!\n/m /.scalemesh/manifest.json 200!")
    for path in ("/peek", "/m"):
        response = await get(site, path)
        assert b"_redirects" not in response.body
        assert response.body != b"{}"


async def test_compressed_siblings_are_not_files() -> None:
    site = await make({"index.html": b"home", "a.js": b"js"}, compressed=("a.js",))
    assert (await get(site, "/a.js.br")).status == 404


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


# --- ETag and If-None-Match ----------------------------------------------------------------


@pytest.mark.parametrize(
    "if_none_match",
    [
        etag_of(b"<h1>about</h1>"),
        "W/" + etag_of(b"<h1>about</h1>"),
        f'"other", {etag_of(b"<h1>about</h1>")}',
        f'W/"other",W/{etag_of(b"<h1>about</h1>")}',
        "*",
    ],
)
async def test_if_none_match_gives_304(if_none_match: str) -> None:
    response = await get(await make(), "/about", if_none_match=if_none_match)
    assert response.status == 304
    assert response.body == b""
    assert response.header("etag") == etag_of(b"<h1>about</h1>")
    assert response.header("cache-control") == "public, max-age=0, must-revalidate"
    assert response.header("content-length") is None
    assert response.header("x-content-type-options") == "nosniff"


async def test_a_stale_etag_gets_the_file() -> None:
    response = await get(await make(), "/about", if_none_match='"stale", W/"older"')
    assert (response.status, response.body) == (200, b"<h1>about</h1>")


async def test_304_beats_range() -> None:
    etag = etag_of(b"0123456789")
    response = await get(await make(), "/data.txt", if_none_match=etag, range="bytes=0-1")
    assert response.status == 304


# --- Range ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "body", "content_range"),
    [
        ("bytes=0-3", b"0123", "bytes 0-3/10"),
        ("bytes=2-2", b"2", "bytes 2-2/10"),
        ("bytes=5-", b"56789", "bytes 5-9/10"),
        ("bytes=-3", b"789", "bytes 7-9/10"),
        ("bytes=-30", b"0123456789", "bytes 0-9/10"),
        ("bytes=8-100", b"89", "bytes 8-9/10"),
        ("Bytes = 1-2", b"12", "bytes 1-2/10"),
    ],
)
async def test_range_gives_206(header: str, body: bytes, content_range: str) -> None:
    response = await get(await make(), "/data.txt", range=header)
    assert (response.status, response.body) == (206, body)
    assert response.header("content-range") == content_range
    assert response.header("content-length") == str(len(body))


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=10-20", "bytes=-0", "bytes=99-100"])
async def test_unsatisfiable_range_gives_416(header: str) -> None:
    response = await get(await make(), "/data.txt", range=header)
    assert response.status == 416
    assert response.header("content-range") == "bytes */10"
    assert response.body == b""


async def test_any_range_of_an_empty_file_is_unsatisfiable() -> None:
    site = await make({"empty.txt": b""})
    assert (await get(site, "/empty.txt", range="bytes=-5")).status == 416
    assert (await get(site, "/empty.txt", range="bytes=0-")).status == 416


@pytest.mark.parametrize(
    "header",
    ["bytes=0-1,3-4", "items=0-1", "bytes=5-2", "bytes=", "bytes=-", "bytes=a-b", "bytes=1", "0-1"],
)
async def test_unusable_range_is_ignored(header: str) -> None:
    response = await get(await make(), "/data.txt", range=header)
    assert (response.status, response.body) == (200, b"0123456789")


async def test_if_range_with_the_current_etag_keeps_the_range() -> None:
    etag = etag_of(b"0123456789")
    response = await get(await make(), "/data.txt", range="bytes=0-1", if_range=etag)
    assert (response.status, response.body) == (206, b"01")


@pytest.mark.parametrize(
    "if_range", ['"0000"', "W/" + etag_of(b"0123456789"), "Fri, 27 Nov 2026 21:00:00 GMT"]
)
async def test_if_range_that_no_longer_matches_sends_the_whole_file(if_range: str) -> None:
    response = await get(await make(), "/data.txt", range="bytes=0-1", if_range=if_range)
    assert (response.status, response.body) == (200, b"0123456789")


async def test_range_on_a_404_page_is_ignored() -> None:
    site = await make({"404.html": b"lost page"})
    response = await get(site, "/nope", range="bytes=0-1")
    assert (response.status, response.body) == (404, b"lost page")


# --- HEAD and methods ----------------------------------------------------------------------


async def test_head_has_get_headers_and_no_body() -> None:
    site = await make()
    got = await get(site, "/about")
    head = await get(site, "/about", method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.headers == got.headers


async def test_head_does_not_read_an_identity_file() -> None:
    deployment = FakeDeployment({"big.bin": b"x" * 1000})
    site = await deployment.site()
    response = await get(site, "/big.bin", method="HEAD")
    assert response.header("content-length") == "1000"
    assert deployment.reads == []


async def test_head_range_and_404() -> None:
    site = await make()
    partial = await get(site, "/data.txt", method="HEAD", range="bytes=0-3")
    assert (partial.status, partial.body, partial.header("content-length")) == (206, b"", "4")
    missing = await get(site, "/x.png", method="HEAD")
    assert (missing.status, missing.body) == (404, b"")
    assert missing.header("content-length") not in (None, "0")


async def test_head_of_a_compressed_file_has_its_length() -> None:
    site = await make({"a.js": b"js" * 50}, compressed=("a.js",))
    response = await get(site, "/a.js", method="HEAD", accept_encoding="br")
    assert response.header("content-encoding") == "br"
    assert response.header("content-length") == str(len(b"BR:" + b"js" * 50))
    assert response.body == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
async def test_other_methods_get_405(method: str) -> None:
    response = await get(await make(), "/about", method=method)
    assert response.status == 405
    assert response.header("allow") == "GET, HEAD"
    assert response.header("x-content-type-options") == "nosniff"


# --- Accept-Encoding -----------------------------------------------------------------------

DATA = b"function f() { return 1 }" * 20


@pytest.mark.parametrize(
    ("accept", "encoding", "body"),
    [
        ("gzip, deflate, br", "br", b"BR:" + DATA),
        ("br;q=1.0, gzip;q=0.8", "br", b"BR:" + DATA),
        ("gzip", "gzip", gzip.compress(DATA, mtime=0)),
        ("GZIP", "gzip", gzip.compress(DATA, mtime=0)),
        ("br;q=0, gzip", "gzip", gzip.compress(DATA, mtime=0)),
        ("*", "br", b"BR:" + DATA),
        ("", None, DATA),
        ("identity", None, DATA),
        ("deflate", None, DATA),
        ("br;q=0, gzip;q=0", None, DATA),
        ("br;q=oops", None, DATA),
    ],
)
async def test_encoding_negotiation(accept: str, encoding: str | None, body: bytes) -> None:
    site = await make({"app.js": DATA}, compressed=("app.js",))
    response = await get(site, "/app.js", accept_encoding=accept)
    assert response.status == 200
    assert response.header("content-encoding") == encoding
    assert response.header("vary") == "Accept-Encoding"
    assert response.body == body
    assert response.header("content-length") == str(len(body))


async def test_each_encoding_has_its_own_etag() -> None:
    site = await make({"app.js": DATA}, compressed=("app.js",))
    tags = {
        (await get(site, "/app.js", accept_encoding=accept)).header("etag")
        for accept in ("br", "gzip", "")
    }
    assert len(tags) == 3
    br_tag = (await get(site, "/app.js", accept_encoding="br")).header("etag")
    assert br_tag is not None
    revalidated = await get(site, "/app.js", accept_encoding="br", if_none_match=br_tag)
    assert revalidated.status == 304
    assert revalidated.header("vary") == "Accept-Encoding"


async def test_only_listed_encodings_are_served() -> None:
    deployment = FakeDeployment({"app.js": DATA}, compressed=("app.js",))
    deployment.manifest["files"]["app.js"]["encodings"] = ["gzip"]
    site = await deployment.site()
    response = await get(site, "/app.js", accept_encoding="br, gzip")
    assert response.header("content-encoding") == "gzip"


async def test_range_is_always_identity() -> None:
    site = await make({"app.js": DATA}, compressed=("app.js",))
    response = await get(site, "/app.js", accept_encoding="br, gzip", range="bytes=0-7")
    assert response.status == 206
    assert response.header("content-encoding") is None
    assert response.body == DATA[:8]
    assert response.header("vary") == "Accept-Encoding"


async def test_compressible_file_without_siblings_still_varies() -> None:
    site = await make({"tiny.css": b"a{}"})
    response = await get(site, "/tiny.css", accept_encoding="br")
    assert response.header("vary") == "Accept-Encoding"
    assert response.header("content-encoding") is None


async def test_images_do_not_vary() -> None:
    response = await get(await make(), "/logo.png", accept_encoding="br")
    assert response.header("vary") is None


async def test_a_404_page_is_served_compressed() -> None:
    files = {"404.html": b"<h1>lost</h1>" * 20}
    site = await make(files, compressed=("404.html",))
    response = await get(site, "/x", accept_encoding="br")
    assert (response.status, response.header("content-encoding")) == (404, "br")


# --- nosniff everywhere --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/", {}),
        ("/about.html", {}),
        ("/x.png", {}),
        ("/data.txt", {"range": "bytes=0-1"}),
        ("/data.txt", {"range": "bytes=50-"}),
        ("/old", {}),
        ("/_headers", {}),
    ],
)
async def test_nosniff_on_everything(path: str, extra: dict[str, str]) -> None:
    site = await make(redirects="/old /new", headers="/*\n  X-A: 1")
    response = await get(site, path, **extra)
    assert response.header("x-content-type-options") == "nosniff"


async def test_missing_object_behind_the_manifest_propagates() -> None:
    deployment = FakeDeployment({"index.html": b"home"})
    del deployment.objects["index.html"]
    site = await deployment.site()
    with pytest.raises(FileNotFoundError):
        await get(site, "/")
