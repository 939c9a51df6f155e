"""Hosts to labels and raw paths to keys, including a corpus of traversal attempts."""

from __future__ import annotations

import pytest

from proxy.routing import BadPath, HostKind, HostMatch, label_for_host, path_to_key

ROOT = "scalemesh.test"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("blog.scalemesh.test", HostMatch(HostKind.LABEL, "blog")),
        ("Blog.ScaleMesh.Test", HostMatch(HostKind.LABEL, "blog")),
        ("blog.scalemesh.test:8080", HostMatch(HostKind.LABEL, "blog")),
        ("blog.scalemesh.test.", HostMatch(HostKind.LABEL, "blog")),
        ("blog.scalemesh.test.:443", HostMatch(HostKind.LABEL, "blog")),
        (" blog.scalemesh.test ", HostMatch(HostKind.LABEL, "blog")),
        ("blog-git-main.scalemesh.test", HostMatch(HostKind.LABEL, "blog-git-main")),
        ("blog-1a2b3c4d5.scalemesh.test", HostMatch(HostKind.LABEL, "blog-1a2b3c4d5")),
        ("a" * 63 + ".scalemesh.test", HostMatch(HostKind.LABEL, "a" * 63)),
        ("www.example.com", HostMatch(HostKind.CUSTOM, "www.example.com")),
        ("WWW.Example.COM.:443", HostMatch(HostKind.CUSTOM, "www.example.com")),
        ("example.com", HostMatch(HostKind.CUSTOM, "example.com")),
        ("xn--bcher-kva.example", HostMatch(HostKind.CUSTOM, "xn--bcher-kva.example")),
        # Not under the root domain, merely ending with the same letters.
        ("evilscalemesh.test", HostMatch(HostKind.CUSTOM, "evilscalemesh.test")),
    ],
)
def test_valid_hosts(host: str, expected: HostMatch) -> None:
    assert label_for_host(host, ROOT) == expected


@pytest.mark.parametrize(
    "host",
    [
        "",
        "   ",
        "scalemesh.test",  # the apex has no label
        "scalemesh.test.",
        "a.b.scalemesh.test",  # only one label under the root
        "a" * 64 + ".scalemesh.test",
        "-blog.scalemesh.test",
        "blog-.scalemesh.test",
        "bl_og.scalemesh.test",
        "bl og.scalemesh.test",
        ".scalemesh.test",
        "blog..scalemesh.test",
        "blög.scalemesh.test",  # browsers send punycode
        "blog.scalemesh.test:",  # a colon without a port
        "blog.scalemesh.test:http",
        "blog.scalemesh.test:123456",
        "10.0.0.1",
        "10.0.0.1:80",
        "[::1]",
        "[::1]:8080",
        "::1",
        "blog.scalemesh.test/x",
        "blog.scalemesh.test\r\nx",
        "example.com\x00",
        "user@example.com",
        "a" * 64 + ".example.com",
        ("a" * 60 + ".") * 5 + "com",  # longer than 253
        ".",
        "..",
    ],
)
def test_invalid_hosts(host: str) -> None:
    match = label_for_host(host, ROOT)
    assert match.kind is HostKind.INVALID
    assert match.label is None
    assert match.custom is None


def test_match_accessors() -> None:
    assert label_for_host("blog.scalemesh.test", ROOT).label == "blog"
    assert label_for_host("blog.scalemesh.test", ROOT).custom is None
    assert label_for_host("docs.example.com", ROOT).custom == "docs.example.com"
    assert label_for_host("docs.example.com", ROOT).label is None


def test_root_domain_is_normalised_too() -> None:
    assert label_for_host("blog.scalemesh.test", "ScaleMesh.Test.").label == "blog"
    assert label_for_host("blog.scalemesh.test", "").kind is HostKind.INVALID


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("/", ""),
        ("//", ""),
        ("/.", ""),
        ("/./", ""),
        ("/index.html", "index.html"),
        ("/about", "about"),
        ("/docs/", "docs/"),
        ("/docs/.", "docs/"),
        ("/docs//guide", "docs/guide"),
        ("/docs/./guide", "docs/guide"),
        ("///docs///guide///", "docs/guide/"),
        ("/a%20b.html", "a b.html"),
        ("/caf%C3%A9", "café"),
        ("/café", "café"),
        ("/%E2%9C%93", "\u2713"),
        ("/a+b", "a+b"),
        ("/...", "..."),  # a legal file name, not a climb
        ("/a..b/c..", "a..b/c.."),
        ("/.well-known/security.txt", ".well-known/security.txt"),
        ("/100%21", "100!"),
        ("/docs?x=1", "docs"),
        (b"/bytes/path", "bytes/path"),
    ],
)
def test_path_to_key(raw: str | bytes, key: str) -> None:
    assert path_to_key(raw) == key


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "docs",
        "*",
        "http://evil/",
        "/%",
        "/%2",
        "/%zz",
        "/%G0",
        "/100%",
        "/%25",  # a literal `%` is encoded as %25, refused as a second layer of encoding
        b"/\xff",  # raw invalid UTF-8
        "/%ff",
        "/%e2%9c",  # a truncated multi-byte character
    ],
)
def test_malformed_paths(raw: str | bytes) -> None:
    with pytest.raises(BadPath):
        path_to_key(raw)


# Each is either refused or normalised to a key that stays inside the deployment.
TRAVERSAL = [
    "/../etc/passwd",
    "/..",
    "/../",
    "/a/../../b",
    "/a/b/../../../c",
    "/./../",
    "/.%2e/",
    "/%2e%2e/",
    "/%2E%2E/",
    "/%2e%2e%2fetc%2fpasswd",
    "/%252e%252e/",
    "/%252e%252e%252f",
    "/%25252e%25252e/",
    "/..%2f",
    "/..%2F..%2Fetc",
    "/..%5c",
    "/..%5C..%5Cwindows",
    "/..\\",
    "/..\\..\\etc",
    "/\\..\\etc",
    "/%00",
    "/index.html%00.png",
    "/a%0d%0aSet-Cookie:x",
    "/a\r\nb",
    "/a\tb",
    "/%7f",
    "/%c2%85",  # NEL, a C1 control
    "/%c0%ae%c0%ae/",  # overlong UTF-8 for `..`
    "/%c0%af",  # overlong `/`
    "/%e0%80%ae",  # three-byte overlong `.`
    "/%c1%9c",  # overlong `\`
    "/\uff0e\uff0e/etc",  # fullwidth full stops
    "/%ef%bc%8e%ef%bc%8e/",  # the same, encoded
    "/\u2025/",  # two-dot leader, NFKC `..`
    "/\u2024\u2024/",  # one-dot leaders
    "/\ufe52\ufe52/",  # small full stops
    "/a\uff0fb",  # fullwidth solidus
    "/a\uff3cb",  # fullwidth reverse solidus
    "/a\u2215..",  # division slash stays inside one segment
    "/.../...",
    "/....//....//etc",
    "//../",
    "/%2f..",
    "/%2e",
    "/.%2E",
    "/%u002e%u002e/",  # IIS-style unicode escape
    "/..;/",
    "/;/../",
    "/..%00/",
    "/..%c0%af",
    "/.. /",
    "/. ./",
    "/%20../",
    "/file:///etc/passwd",
    "/C:\\Windows",
    "/%41\\..\\etc",  # a backslash after an escape: the byte-by-byte decoder refuses it
    "/%41\x01",
    "/etc/passwd/..",
]


def test_traversal_corpus_is_large() -> None:
    assert len(TRAVERSAL) >= 30


@pytest.mark.parametrize("raw", TRAVERSAL)
def test_traversal_never_escapes(raw: str) -> None:
    try:
        key = path_to_key(raw)
    except BadPath:
        return
    assert not key.startswith("/")
    assert ".." not in key.rstrip("/").split("/")
    assert "." not in key.rstrip("/").split("/")
    assert "\\" not in key
    assert "\0" not in key
    assert all(char.isprintable() for char in key)


def test_traversal_corpus_escapes_nothing() -> None:
    """Count the escapes over the whole corpus: there must be none."""
    escapes = []
    for raw in TRAVERSAL:
        try:
            key = path_to_key(raw)
        except BadPath:
            continue
        if key.startswith("/") or ".." in key.split("/"):
            escapes.append((raw, key))
    assert escapes == []


@pytest.mark.parametrize(
    "raw",
    ["/../etc/passwd", "/%2e%2e/", "/%252e%252e/", "/..%2f", "/..\\", "/%00", "/a/../../b"],
)
def test_named_attacks_are_refused(raw: str) -> None:
    with pytest.raises(BadPath):
        path_to_key(raw)
