"""What a deployment changed against another: two manifests in, a frozen `ManifestDiff` out.

Pure: no storage, no database. Files are compared by sha256; sizes come from the manifests
alone (`size`, and `br_size`, what a browser asking for brotli is sent). A manifest written
before `br_size` was recorded still diffs: a file of it without a `.br` sibling is sent raw, so
its raw size counts; one with a sibling has an unknown compressed size, and so has the total
(`Sizes.br` None: "compressed size unknown"; no estimate, which could mislead by the very
amount a change is about).

The manifest is the build's output, hostile input: its shape is checked (msgspec), and a
malformed one raises `ManifestError`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

import msgspec

NAMES = 20
"""Names listed per kind of change; the counts say how many there are."""
LARGEST = 5
HTML_SUFFIXES = (".html", ".htm")

_Size = Annotated[int, msgspec.Meta(ge=0, le=1 << 50)]


class _File(msgspec.Struct, frozen=True):
    size: _Size
    sha256: str
    content_type: str = ""
    encodings: list[str] = []
    br_size: _Size | None = None


class _Manifest(msgspec.Struct, frozen=True):
    files: dict[str, _File] = {}


class ManifestError(ValueError):
    """The manifest is not one a build writes (not JSON, or files of the wrong shape)."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """A deployment's total transfer size."""

    raw: int
    br: int | None
    """With brotli where a `.br` sibling exists; None when an older manifest does not say."""


@dataclass(frozen=True, slots=True)
class Listed:
    """One kind of change: how many, and the first `NAMES` of them, sorted."""

    count: int
    names: tuple[str, ...]

    @classmethod
    def of(cls, names: Iterable[str]) -> Listed:
        every = list(names)
        return cls(len(every), tuple(heapq.nsmallest(NAMES, every)))


@dataclass(frozen=True, slots=True)
class AssetChange:
    """A file added, removed or changed, with its size on each side (None: not there)."""

    path: str
    before: int | None
    after: int | None
    br_before: int | None
    br_after: int | None

    @property
    def delta(self) -> int:
        return (self.after or 0) - (self.before or 0)

    @property
    def br_delta(self) -> int | None:
        known_before = self.before is None or self.br_before is not None
        known_after = self.after is None or self.br_after is not None
        if not (known_before and known_after):
            return None
        return (self.br_after or 0) - (self.br_before or 0)


@dataclass(frozen=True, slots=True)
class ManifestDiff:
    """What `after` (a preview) changed against `before` (production)."""

    added: Listed
    removed: Listed
    changed: Listed
    unchanged: int
    before: Sizes
    after: Sizes
    largest: tuple[AssetChange, ...]
    """The `LARGEST` files added, removed or changed with the largest raw size change."""
    pages_added: Listed
    pages_removed: Listed
    """HTML pages, as the paths they are served at (`about/index.html` → `/about/`)."""

    @property
    def identical(self) -> bool:
        return not (self.added.count or self.removed.count or self.changed.count)


def parse(data: bytes) -> dict[str, _File]:
    """The files of a manifest, checked; `ManifestError` when it is malformed."""
    try:
        return dict(msgspec.json.decode(data, type=_Manifest).files)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"the manifest is malformed: {exc}") from None


def diff(before: bytes, after: bytes) -> ManifestDiff:
    """Compare two manifests (production's, then the preview's)."""
    return _compare(parse(before), parse(after))


def _compare(old: dict[str, _File], new: dict[str, _File]) -> ManifestDiff:
    added = new.keys() - old.keys()
    removed = old.keys() - new.keys()
    changed = {path for path in new.keys() & old.keys() if new[path].sha256 != old[path].sha256}
    deltas = (
        (-abs((_size(new.get(path)) or 0) - (_size(old.get(path)) or 0)), path)
        for path in added | removed | changed
    )
    largest = [
        AssetChange(
            path,
            _size(old.get(path)),
            _size(new.get(path)),
            _br(old.get(path)),
            _br(new.get(path)),
        )
        for _, path in heapq.nsmallest(LARGEST, deltas)
    ]
    return ManifestDiff(
        added=Listed.of(added),
        removed=Listed.of(removed),
        changed=Listed.of(changed),
        unchanged=len(new) - len(added) - len(changed),
        before=_totals(old),
        after=_totals(new),
        largest=tuple(largest),
        pages_added=Listed.of(page_path(path) for path in added if _is_page(path, new[path])),
        pages_removed=Listed.of(page_path(path) for path in removed if _is_page(path, old[path])),
    )


def page_path(path: str) -> str:
    """The path an HTML file is served at: its directory for an index page."""
    if path == "index.html" or path.endswith("/index.html"):
        return "/" + path.removesuffix("index.html")
    return "/" + path


def _is_page(path: str, file: _File) -> bool:
    return file.content_type.startswith("text/html") or path.lower().endswith(HTML_SUFFIXES)


def _size(file: _File | None) -> int | None:
    return None if file is None else file.size


def _br(file: _File | None) -> int | None:
    """What a brotli-accepting browser is sent; None when an older manifest does not say."""
    if file is None:
        return None
    if file.br_size is not None:
        return file.br_size
    return None if "br" in file.encodings else file.size


def _totals(files: dict[str, _File]) -> Sizes:
    br: int | None = 0
    for file in files.values():
        compressed = _br(file)
        br = None if br is None or compressed is None else br + compressed
    return Sizes(sum(file.size for file in files.values()), br)
