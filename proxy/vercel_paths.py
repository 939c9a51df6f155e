"""Vercel's filesystem step: the `cleanUrls` / `trailingSlash` redirects, and the file a path names.

As `vercel.json` has them: `cleanUrls` sends `/about.html` and `/docs/index.html` to `/about` and
`/docs` (308) and serves `/about` from `about.html`; `trailingSlash: true` adds the slash to a
path whose last segment has no extension (and drops it after a file name), `false` drops it.
Without `cleanUrls`, `/about` is not `about.html`: it falls through to the rewrites.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

INDEX_FILE = "index.html"

_INDEX = re.compile(r"/(?:(.+)/)?index(?:\.html)?/?")
_HTML = re.compile(r"/(.+)\.html/?")
_NO_EXTENSION = re.compile(r"/(?:[^/]+/)*[^/.]+")
_FILE_WITH_SLASH = re.compile(r"/(?:[^/]+/)*[^/]+\.\w+/")


def canonical(path: str, *, clean_urls: bool, trailing_slash: bool | None) -> str | None:
    """Where `path` redirects (308) before any rule, or None: it is canonical already."""
    target = path
    if clean_urls:
        index = _INDEX.fullmatch(target)
        html = _HTML.fullmatch(target)
        if index is not None:
            target = "/" + (index.group(1) or "")
        elif html is not None:
            target = "/" + html.group(1)
    if trailing_slash is True:
        if _NO_EXTENSION.fullmatch(target):
            target += "/"
        elif _FILE_WITH_SLASH.fullmatch(target):
            target = target[:-1]
    elif trailing_slash is False and target != "/":
        target = target.rstrip("/") or "/"
    return None if target == path else target


def find(files: Mapping[str, object], key: str, *, clean_urls: bool) -> str | None:
    """The file for `key` (a file, `page.html` under `cleanUrls`, a directory's index)."""
    stripped = key.rstrip("/")
    if stripped and stripped == key and key in files:
        return key
    if clean_urls and stripped and stripped + ".html" in files:
        return stripped + ".html"
    index = f"{stripped}/{INDEX_FILE}" if stripped else INDEX_FILE
    return index if index in files else None
