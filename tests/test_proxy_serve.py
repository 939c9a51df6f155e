"""Static hosting from an in-memory deployment: files, indexes, clean URLs, 404s and methods."""

from __future__ import annotations

import pytest

from tests.support.proxy_site import SITE, FakeDeployment, etag_of, get, make

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
