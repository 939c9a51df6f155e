"""ETag, Range and Accept-Encoding: which bytes a request gets, from an in-memory deployment."""

from __future__ import annotations

import gzip

import pytest

from tests.support.proxy_site import FakeDeployment, etag_of, get, make

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
