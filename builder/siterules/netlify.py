"""Netlify's path patterns: `:name` is one segment, `*` the rest (the splat, `:splat` in a target).

Shared by `_redirects`/`_headers` (`builder.siterules.files`) and `netlify.toml`'s rules
(`builder.siterules.compiled`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

from builder.siterules.safety import MAX_UNBOUNDED, PatternError

_PLACEHOLDER = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")


def compile_pattern(source: str, *, splat_anywhere: bool) -> re.Pattern[str]:
    """A regex for a Netlify path pattern: `:name` is one segment, `*` the rest (the splat).

    Trailing slashes do not matter (`/about` and `/about/` are one page), and `/a/*` matches `/a`.
    Raises `PatternError` for a pattern that is refused, or that could match slowly: `*` may
    only end a redirect's source, at most `MAX_UNBOUNDED` in a header path, and two
    placeholders need text between them.
    """
    body = source.rstrip("/")
    if body.endswith("/*"):
        head, tail = body[:-2], r"(?:/(?P<splat>.*))?/?"
    else:
        head, tail = body, "/?"
    stars = head.count("*") + (tail != "/?")
    if not splat_anywhere and "*" in head:
        raise PatternError("may use * only at its end")
    if stars > MAX_UNBOUNDED:
        raise PatternError(f"may use * at most {MAX_UNBOUNDED} times")
    pieces = re.split(r"(:[A-Za-z_][A-Za-z0-9_]*|\*)", head)
    parts: list[str] = []
    seen: set[str] = set()
    for index, piece in enumerate(pieces):
        if index % 2 == 0:
            parts.append(re.escape(piece))
            continue
        if piece == "*":
            # Only `_headers` gets here: `*` inside a path (`/*.js`) is "anything".
            parts.append(".*")
            continue
        after = pieces[index + 1]
        if not after and index + 1 < len(pieces) - 1:
            raise PatternError(f"needs text between {piece} and {pieces[index + 2]}")
        # As path-to-regexp 6.3 guards it: `:a-:b` must not let `:a` eat the `-` too, or a
        # long segment with no match backtracks over every split of it.
        segment = "[^/" + (re.escape(after[0]) if after and after[0] != "/" else "") + "]+"
        if piece[1:] in seen or piece[1:] == "splat":
            parts.append(segment)
        else:
            seen.add(piece[1:])
            parts.append(f"(?P<{piece[1:]}>{segment})")
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
