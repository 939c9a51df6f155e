"""The diff of two manifests (`app.deployments.diff`): table tests on files, sizes, pages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.deployments.diff import (
    LARGEST,
    NAMES,
    AssetChange,
    Listed,
    ManifestError,
    Sizes,
    diff,
    page_path,
)

HTML = "text/html; charset=utf-8"
JS = "text/javascript; charset=utf-8"


def entry(
    size: int,
    sha: str,
    *,
    br: int | None = None,
    encodings: tuple[str, ...] = (),
    content_type: str = JS,
    old: bool = False,
) -> dict[str, Any]:
    """A manifest file record; `old` leaves `br_size` out, as manifests before it did."""
    record: dict[str, Any] = {
        "size": size,
        "sha256": sha * 64 if len(sha) == 1 else sha,
        "content_type": content_type,
        "cache_control": "public, max-age=0, must-revalidate",
        "encodings": list(encodings),
    }
    if not old:
        record["br_size"] = size if br is None else br
    return record


def raw(files: dict[str, dict[str, Any]]) -> bytes:
    return json.dumps({"version": 1, "files": files}).encode()


PRODUCTION = raw(
    {
        "index.html": entry(2000, "a", br=600, encodings=("br", "gzip"), content_type=HTML),
        "about/index.html": entry(900, "b", content_type=HTML),
        "assets/app.js": entry(100_000, "c", br=30_000, encodings=("br", "gzip")),
        "assets/old.js": entry(5_000, "d", br=2_000, encodings=("br",)),
        "logo.png": entry(7_000, "e", content_type="image/png"),
    }
)
PREVIEW = raw(
    {
        "index.html": entry(2100, "f", br=650, encodings=("br", "gzip"), content_type=HTML),
        "about/index.html": entry(900, "b", content_type=HTML),
        "assets/app.js": entry(120_000, "g", br=36_000, encodings=("br", "gzip")),
        "blog/first.html": entry(1500, "h", br=500, encodings=("br",), content_type=HTML),
        "logo.png": entry(7_000, "e", content_type="image/png"),
    }
)


def test_files_added_removed_and_changed_by_sha256() -> None:
    d = diff(PRODUCTION, PREVIEW)
    assert d.added == Listed(1, ("blog/first.html",))
    assert d.removed == Listed(1, ("assets/old.js",))
    assert d.changed == Listed(2, ("assets/app.js", "index.html"))
    assert d.unchanged == 2
    assert not d.identical


def test_total_transfer_sizes_raw_and_brotli() -> None:
    d = diff(PRODUCTION, PREVIEW)
    assert d.before == Sizes(
        raw=2000 + 900 + 100_000 + 5_000 + 7_000, br=600 + 900 + 30_000 + 2_000 + 7_000
    )
    assert d.after == Sizes(
        raw=2100 + 900 + 120_000 + 1500 + 7_000, br=650 + 900 + 36_000 + 500 + 7_000
    )


def test_the_largest_changes_with_their_deltas() -> None:
    d = diff(PRODUCTION, PREVIEW)
    assert d.largest == (
        AssetChange("assets/app.js", 100_000, 120_000, 30_000, 36_000),
        AssetChange("assets/old.js", 5_000, None, 2_000, None),
        AssetChange("blog/first.html", None, 1500, None, 500),
        AssetChange("index.html", 2000, 2100, 600, 650),
    )
    assert [c.delta for c in d.largest] == [20_000, -5_000, 1500, 100]
    assert [c.br_delta for c in d.largest] == [6_000, -2_000, 500, 50]


def test_only_five_largest_are_kept_ties_by_name() -> None:
    before = raw({f"f{i}.js": entry(100, "a") for i in range(8)})
    after = raw({f"f{i}.js": entry(100 + (i % 4) * 10, "b") for i in range(8)})
    d = diff(before, after)
    assert len(d.largest) == LARGEST
    assert [c.path for c in d.largest] == ["f3.js", "f7.js", "f2.js", "f6.js", "f1.js"]


def test_html_pages_added_and_removed_as_served_paths() -> None:
    before = raw(
        {
            "index.html": entry(10, "a", content_type=HTML),
            "docs/index.html": entry(10, "b", content_type=HTML),
            "old.htm": entry(10, "c", content_type="application/octet-stream"),
            "style.css": entry(10, "d", content_type="text/css"),
        }
    )
    after = raw(
        {
            "index.html": entry(10, "z", content_type=HTML),
            "guide/index.html": entry(10, "e", content_type=HTML),
            "page": entry(10, "f", content_type=HTML),  # served as HTML without a suffix
            "new.css": entry(10, "g", content_type="text/css"),
        }
    )
    d = diff(before, after)
    assert d.pages_added == Listed(2, ("/guide/", "/page"))
    assert d.pages_removed == Listed(2, ("/docs/", "/old.htm"))
    assert d.changed.names == ("index.html",)  # changed pages are files changed, not pages


@pytest.mark.parametrize(
    ("path", "served"),
    [
        ("index.html", "/"),
        ("a/b/index.html", "/a/b/"),
        ("a/notindex.html", "/a/notindex.html"),
        ("a.html", "/a.html"),
    ],
)
def test_page_paths(path: str, served: str) -> None:
    assert page_path(path) == served


def test_at_most_twenty_names_but_every_one_counted() -> None:
    after = raw({f"chunk-{i:03}.js": entry(1, "a") for i in range(250)})
    d = diff(raw({}), after)
    assert d.added.count == 250
    assert len(d.added.names) == NAMES
    assert d.added.names[0] == "chunk-000.js"
    assert d.added.names == tuple(sorted(d.added.names))


def test_identical_manifests() -> None:
    d = diff(PRODUCTION, PRODUCTION)
    assert d.identical
    assert (d.added.count, d.removed.count, d.changed.count, d.largest) == (0, 0, 0, ())
    assert d.before == d.after


@pytest.mark.parametrize(
    ("record", "br"),
    [
        (entry(5000, "a", encodings=("br", "gzip"), old=True), None),  # had a .br: unknown size
        (entry(5000, "a", encodings=("gzip",), old=True), 5000),  # no .br: sent raw
        (entry(500, "a", old=True), 500),  # under 1 KiB: never compressed
        (entry(5000, "a", br=1200, encodings=("br",)), 1200),
    ],
)
def test_old_manifests_without_brotli_sizes(record: dict[str, Any], br: int | None) -> None:
    """A manifest from before `br_size`: a file with a `.br` sibling has an unknown compressed
    size (and so has the total); one without was sent raw."""
    d = diff(raw({"x.js": record}), PREVIEW)
    assert d.before.br == br
    assert d.before.raw == record["size"]
    assert d.after.br is not None


def test_an_old_manifest_leaves_the_assets_brotli_delta_unknown() -> None:
    before = raw({"app.js": entry(5000, "a", encodings=("br",), old=True)})
    after = raw({"app.js": entry(6000, "b", br=1500, encodings=("br",))})
    [change] = diff(before, after).largest
    assert (change.delta, change.br_delta) == (1000, None)
    [gone] = diff(before, raw({})).largest
    assert (gone.delta, gone.br_delta) == (-5000, None)


def test_a_manifest_without_files_is_an_empty_site() -> None:
    d = diff(b'{"version": 1}', PREVIEW)
    assert d.added.count == 5
    assert d.before == Sizes(0, 0)


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"files": []}',
        b'{"files": {"a": {"size": -1, "sha256": "x"}}}',
        b'{"files": {"a": {"size": 1}}}',
        b'{"files": {"a": {"size": "1", "sha256": "x"}}}',
        b'{"files": {"a": {"size": 1, "sha256": "x", "br_size": -5}}}',
    ],
)
def test_malformed_manifests_are_refused(data: bytes) -> None:
    with pytest.raises(ManifestError, match="the manifest is malformed"):
        diff(data, PREVIEW)
    with pytest.raises(ManifestError):
        diff(PREVIEW, data)
