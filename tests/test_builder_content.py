"""Content types, cache policy and compressibility of deployed files."""

from __future__ import annotations

import pytest

from builder.content import IMMUTABLE, REVALIDATE, cache_control, content_type, is_compressible


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("assets/app.js", "text/javascript; charset=utf-8"),
        ("chunk.mjs", "text/javascript; charset=utf-8"),
        ("style.CSS", "text/css; charset=utf-8"),
        ("data.json", "application/json; charset=utf-8"),
        ("app.js.map", "application/json; charset=utf-8"),
        ("site.webmanifest", "application/manifest+json; charset=utf-8"),
        ("feed.xml", "application/xml; charset=utf-8"),
        ("robots.txt", "text/plain; charset=utf-8"),
        ("logo.svg", "image/svg+xml"),
        ("app.wasm", "application/wasm"),
        ("font.woff2", "font/woff2"),
        ("photo.webp", "image/webp"),
        ("photo.avif", "image/avif"),
        ("favicon.ico", "image/x-icon"),
        ("photo.JPG", "image/jpeg"),
        ("doc.pdf", "application/pdf"),
        ("archive.tar", "application/x-tar"),  # not in our map: from mimetypes
        ("LICENSE", "application/octet-stream"),
        ("data.unknownext", "application/octet-stream"),
    ],
)
def test_content_type(path: str, expected: str) -> None:
    assert content_type(path) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # content-hashed names, whatever the directory
        ("index-Bx7a9kQe.js", IMMUTABLE),  # Rollup/Vite base64url
        ("js/index-B-x7a9kQ.js", IMMUTABLE),  # base64url holding a dash
        ("main.1a2b3c4d.js", IMMUTABLE),  # webpack hex
        ("1a2b3c4d5e.js", IMMUTABLE),  # a name that is all hash
        ("vendor.chunk.ABCDEF12.css", IMMUTABLE),
        # framework directories of hashed files
        ("assets/logo.png", REVALIDATE),
        ("_astro/page.css", IMMUTABLE),
        ("_next/static/chunks/main.js", IMMUTABLE),
        ("_app/immutable/entry.js", IMMUTABLE),
        ("static/js/main.js", IMMUTABLE),
        # names that merely contain letters and digits
        ("my-component.js", REVALIDATE),
        ("chunk-vendors2.js", REVALIDATE),
        ("logo192.png", REVALIDATE),
        ("Logo1920x1080.png", REVALIDATE),
        ("photo-Summer2024.jpg", REVALIDATE),
        ("icon-DarkMode16.png", REVALIDATE),
        ("report-20240101.pdf", REVALIDATE),
        ("deadbeef.js", REVALIDATE),
        ("a.ABCDEFGH.js", REVALIDATE),
        (".htaccess", REVALIDATE),
        # HTML always revalidates
        ("index.html", REVALIDATE),
        ("assets/index-Bx7a9kQe.html", REVALIDATE),
        ("static/js/page.html", REVALIDATE),
    ],
)
def test_cache_control(path: str, expected: str) -> None:
    assert cache_control(path) == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("text/html; charset=utf-8", True),
        ("text/javascript; charset=utf-8", True),
        ("application/json; charset=utf-8", True),
        ("application/manifest+json; charset=utf-8", True),
        ("application/ld+json", True),
        ("application/xml", True),
        ("image/svg+xml", True),
        ("application/wasm", True),
        ("image/png", False),
        ("image/webp", False),
        ("font/woff2", False),
        ("application/octet-stream", False),
    ],
)
def test_is_compressible(kind: str, expected: bool) -> None:
    assert is_compressible(kind) is expected
