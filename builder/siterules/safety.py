"""What a site's rules may not do: run a regex that backtracks without bound, or set a header
the proxy owns (the bytes' framing) or one that reaches beyond the deployment (cookies).

Every regex a rule brings (a path parameter's `(pattern)`, a `has` value) is a user's: Python's
`re` has no time limit, so a pattern is refused unless its worst case is polynomial and small.
No backreferences, lookarounds or conditionals; no quantified group that holds a quantifier or
an alternation (`(a+)+`, `(a|aa)*`, the exponential cases); at most `MAX_UNBOUNDED` unbounded
repeats in one rule; and the proxy matches at most `MAX_MATCHED` characters of a path or value.
"""

from __future__ import annotations

import re
import warnings

MAX_REGEX = 512
"""Characters in one user regex."""
MAX_UNBOUNDED = 2
"""Unbounded repeats (`*`, `+`, `{n,}`) in the user regexes of one rule: matching is then at
worst quadratic in the input."""
MAX_MATCHED = 1024
"""Characters of a path or header value a rule's regex is run on; longer ones match no rule."""
MAX_COSTLY = 4
"""Rules of one site with two unbounded repeats (quadratic when they fail to match)."""

# A `_headers` file (or any header rule) may set caching and security headers, but not the ones
# that describe the bytes on the wire: a wrong one would corrupt the response rather than just
# mislabel it.
FRAMING_HEADERS = frozenset(
    {
        "content-length",
        "content-range",
        "content-encoding",
        "transfer-encoding",
        "etag",
        "location",
        "connection",
        "vary",
        "accept-ranges",
    }
)
# Deployments share the root domain: a cookie one sets (or clears, through Clear-Site-Data,
# which acts on the whole registrable domain) would reach other tenants, the dashboard and the
# proxy's own protection cookie.
COOKIE_HEADERS = frozenset({"set-cookie", "set-cookie2", "clear-site-data"})
REFUSED_HEADERS = FRAMING_HEADERS | COOKIE_HEADERS

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_QUANTIFIER = re.compile(r"[*+?]|\{[0-9]*,?[0-9]*\}")
_GROUP_NAME = re.compile(r"\?P?<([A-Za-z_][A-Za-z0-9_]*)>")


class PatternError(ValueError):
    """A pattern that cannot be used, with the reason."""


def header_problem(name: str, value: str) -> str | None:
    """Why a header rule may not set `name: value`, or None when it may."""
    if not _TOKEN.fullmatch(name):
        return f"{name!r} is not a header name"
    if name.lower() in COOKIE_HEADERS:
        return f"{name} is refused: a deployment may not set or clear cookies"
    if name.lower() in FRAMING_HEADERS:
        return f"{name} is set by the proxy"
    if not is_header_value(value):
        return f"the value of {name} must be printable ASCII"
    return None


def is_header_value(value: str) -> bool:
    # Printable ASCII only: the ASGI edge sends bytes, and CR/LF would split the response.
    return value.isascii() and value.isprintable()


def check_pattern(pattern: str, *, named: bool = False) -> tuple[str, int]:
    """`pattern` (a JavaScript-style regex) as Python's, and its count of unbounded repeats.

    `named`: `(?<name>...)` groups are allowed (a `has` value's captures); else every group
    must be non-capturing, as path-to-regexp requires inside a parameter's pattern.
    """
    if len(pattern) > MAX_REGEX:
        raise PatternError(f"is longer than {MAX_REGEX} characters")
    out: list[str] = []
    # Per open group: (holds a quantifier, holds an alternation).
    stack: list[list[bool]] = [[False, False]]
    unbounded = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i + 1 : i + 2]
            if not escaped:
                raise PatternError("ends with a lone \\")
            if escaped in "123456789gk":
                raise PatternError("uses a backreference, which is not allowed")
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if char == "[":
            end = _class_end(pattern, i)
            out.append(pattern[i:end])
            i = end
            continue
        if char == "(":
            prefix, i = _group_open(pattern, i, named=named)
            out.append(prefix)
            stack.append([False, False])
            continue
        if char == ")":
            if len(stack) == 1:
                raise PatternError("has an unbalanced )")
            quantified, alternated = stack.pop()
            found = _QUANTIFIER.match(pattern, i + 1)
            if found is not None and (quantified or alternated):
                raise PatternError(
                    "repeats a group that holds a repeat or an alternation "
                    "(it could take exponential time); simplify it"
                )
            stack[-1][0] = stack[-1][0] or quantified
            stack[-1][1] = stack[-1][1] or alternated
            out.append(char)
            i += 1
            continue
        if char == "|":
            stack[-1][1] = True
        found = _QUANTIFIER.match(pattern, i)
        if found is not None and (char != "{" or found.group(0) != "{}"):
            text = found.group(0)
            stack[-1][0] = True
            if text in ("*", "+") or text.endswith(",}"):
                unbounded += 1
            out.append(text)
            i = found.end()
            # A lazy `*?` is one repeat, not a second quantifier.
            if pattern[i : i + 1] == "?":
                out.append("?")
                i += 1
            continue
        out.append(char)
        i += 1
    if len(stack) != 1:
        raise PatternError("has an unbalanced (")
    translated = "".join(out)
    with warnings.catch_warnings():
        # Python warns of syntax whose meaning will change (`[[`): refuse it rather than guess.
        warnings.simplefilter("error")
        try:
            re.compile(translated)
        except (re.error, FutureWarning) as exc:
            raise PatternError(f"is not a valid regular expression: {exc}") from None
    return translated, unbounded


def _class_end(pattern: str, start: int) -> int:
    """The index after the character class opened at `start`."""
    i = start + 1
    if pattern[i : i + 1] == "^":
        i += 1
    if pattern[i : i + 1] == "]":
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i + 1
        i += 1
    raise PatternError("has an unterminated [")


def _group_open(pattern: str, start: int, *, named: bool) -> tuple[str, int]:
    """A group's opening, as Python writes it, and the index after it."""
    rest = pattern[start + 1 :]
    if rest.startswith("?:"):
        return "(?:", start + 3
    if rest.startswith(("?=", "?!", "?<=", "?<!")):
        raise PatternError("uses a lookaround, which is not allowed")
    found = _GROUP_NAME.match(rest)
    if found is not None and named:
        return f"(?P<{found.group(1)}>", start + 1 + found.end()
    if rest.startswith("?"):
        raise PatternError(f"uses the group ({rest[:3]}, which is not allowed")
    if not named:
        raise PatternError("has a capturing group inside a pattern; use (?:...)")
    return "(", start + 1
