"""Netlify's path patterns: `:name` is one segment, `*` the rest (the splat, `:splat` in a target).

Shared by `_redirects`/`_headers` (`builder.siterules.files`) and `netlify.toml`'s rules
(`builder.siterules.compiled`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

_PLACEHOLDER = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")


def compile_pattern(source: str, *, splat_anywhere: bool) -> re.Pattern[str] | None:
    """A regex for a Netlify path pattern: `:name` is one segment, `*` the rest (the splat).

    Trailing slashes do not matter (`/about` and `/about/` are one page), and `/a/*` matches `/a`.
    """
    body = source.rstrip("/")
    if body.endswith("/*"):
        head, tail = body[:-2], r"(?:/(?P<splat>.*))?/?"
    else:
        head, tail = body, "/?"
    if not splat_anywhere and "*" in head:
        return None
    parts: list[str] = []
    seen: set[str] = set()
    for index, piece in enumerate(re.split(r"(:[A-Za-z_][A-Za-z0-9_]*|\*)", head)):
        if index % 2 == 0:
            parts.append(re.escape(piece))
        elif piece == "*":
            # Only `_headers` gets here: `*` inside a path (`/*.js`) is "anything".
            parts.append(".*")
        elif piece[1:] in seen or piece[1:] == "splat":
            parts.append("[^/]+")
        else:
            seen.add(piece[1:])
            parts.append(f"(?P<{piece[1:]}>[^/]+)")
    return re.compile("".join(parts) + (tail if head or tail != "/?" else "/"))


def fill(target: str, values: Mapping[str, str]) -> str:
    """`target` with `:splat` and `:name` replaced by what they matched, percent-encoded."""

    def replace(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in values:
            # `https://host:8080/` has no placeholder, just a port; keep such text as it is.
            return found.group(0)
        return quote(values[name], safe="/" if name == "splat" else "")

    return _PLACEHOLDER.sub(replace, target)
