"""Vercel's path patterns (path-to-regexp 6, as `vercel.json` reads them) compiled to Python `re`.

`:name` is one segment, `:name?` an optional one, `:name*` / `:name+` zero / one or more
segments, `:name(\\d+)` a segment matching a custom pattern, `(.*)` an unnamed group (`$1`...),
`\\` escapes the next character. Matching is case-sensitive and strict about a trailing slash,
as Vercel compiles it (`strict: true, sensitive: true, delimiter: "/"`).

Custom patterns are user regexes: they are checked (`builder.siterules.safety`) so that a rule
cannot make a request take exponential time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from builder.siterules.safety import MAX_UNBOUNDED, PatternError, check_pattern

MAX_SOURCE = 4096
"""Characters in one `source` or `destination`."""

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_QUANTIFIED = re.compile(r"[*+?{]")
_PREFIXES = "./"
# In a destination, `:name` may keep the modifier it had in the source (`/news/:slug*`); a `?`
# is one only before `/` or the end, else it starts the query (`/p/:id?from=post`).
_DEST_PARAM = re.compile(r":([A-Za-z0-9_]+)(?:[*+]|\?(?=/|$))?|\$([0-9]+)")


@dataclass(frozen=True, slots=True)
class PathPattern:
    source: str
    regex: re.Pattern[str]
    names: tuple[str, ...]
    """One per capturing group in order: the name, or `""` for an unnamed group (`$n`)."""
    cost: int = 0
    """Its unbounded repeats that may cross segments (`(.*)`, Netlify's `*`): two make a
    failing match quadratic in the path, so a site may have only `MAX_COSTLY` such rules."""

    def match(self, path: str) -> dict[str, str] | None:
        """The captures for `path` by name and by `$n` (1-based), or None if it does not match."""
        found = self.regex.fullmatch(path)
        return None if found is None else self.captures(found)

    def captures(self, found: re.Match[str]) -> dict[str, str]:
        """What a match of `regex` captured, by name and by `$n` (1-based)."""
        values: dict[str, str] = {}
        for index, value in enumerate(found.groups(), 1):
            text = value or ""
            values[f"${index}"] = text
            name = self.names[index - 1]
            if name:
                values[name] = text
        return values


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    prefix: str
    pattern: str | None
    """A custom pattern (already checked), or None for the default segment."""
    modifier: str


def compile_source(source: str) -> PathPattern:
    """A `source` such as `/blog/:slug*` as a regex for a decoded request path."""
    if len(source) > MAX_SOURCE:
        raise PatternError(f"is longer than {MAX_SOURCE} characters")
    if not source.startswith("/"):
        raise PatternError("must be a path starting with /")
    tokens, cost = _tokens(source)
    parts: list[str] = []
    for index, token in enumerate(tokens):
        if isinstance(token, str):
            parts.append(re.escape(token))
            continue
        pattern = token.pattern
        if pattern is None:
            # path-to-regexp 6.3's guard: `/:a-:b` must not let `:a` also eat the `-`, or a
            # long segment with no match backtracks over every split of it.
            after = tokens[index + 1] if index + 1 < len(tokens) else ""
            follows = after[:1] if isinstance(after, str) else after.prefix
            stop = re.escape(follows) if follows not in ("", "/") else ""
            pattern = f"[^/{stop}]+?"
        parts.append(_key(re.escape(token.prefix), pattern, token.modifier))
    names = tuple(token.name for token in tokens if isinstance(token, _Key))
    return PathPattern(source, re.compile("".join(parts)), names, cost)


def _tokens(source: str) -> tuple[list[str | _Key], int]:
    """The literal text and parameters of `source`, as path-to-regexp's parser splits it, and
    the unbounded repeats of its custom patterns."""
    tokens: list[str | _Key] = []
    names: set[str] = set()
    literal, last_plain, unbounded = "", False, 0
    i = 0
    while i < len(source):
        char = source[i]
        if char == "\\":
            if i + 1 == len(source):
                raise PatternError("ends with a lone \\")
            literal, last_plain, i = literal + source[i + 1], False, i + 2
            continue
        if char in "{}":
            raise PatternError("uses { } groups, which are not supported")
        if char in "*+?":
            raise PatternError(f"has {char!r} with no parameter before it (escape it as \\{char})")
        if char not in ":(":
            literal, last_plain, i = literal + char, True, i + 1
            continue
        name, start = "", i
        if char == ":":
            j = i + 1
            while j < len(source) and source[j] in _NAME_CHARS:
                j += 1
            name = source[i + 1 : j]
            if not name:
                raise PatternError(f"has a ':' without a parameter name at {i}")
            if name in names:
                raise PatternError(f"names the parameter :{name} twice")
            names.add(name)
            i = j
        pattern = None
        if i < len(source) and source[i] == "(":
            raw, i = _group(source, i)
            pattern, count = check_pattern(raw)
            unbounded += count
            if unbounded > MAX_UNBOUNDED:
                raise PatternError(
                    f"has more than {MAX_UNBOUNDED} unbounded repeats in its patterns"
                )
        modifier = ""
        if i < len(source) and source[i] in "*+?":
            modifier, i = source[i], i + 1
            if pattern is not None and modifier in "*+" and _QUANTIFIED.search(pattern):
                raise PatternError(f"repeats :{name or '(...)'} whose pattern has a repeat")
        prefix = ""
        # Only a plain (unescaped) `/` or `.` right before the parameter is its prefix.
        if literal and last_plain and literal[-1] in _PREFIXES:
            literal, prefix = literal[:-1], literal[-1]
        if not literal and not prefix and tokens and isinstance(tokens[-1], _Key):
            # As path-to-regexp 6.3 requires: `/:a:b` would try every split of a segment.
            raise PatternError(f"needs text between two parameters (before {source[start:i]})")
        if literal:
            tokens.append(literal)
        tokens.append(_Key(name, prefix, pattern, modifier))
        literal, last_plain = "", False
    if literal:
        tokens.append(literal)
    return tokens, unbounded


def _group(source: str, start: int) -> tuple[str, int]:
    """The pattern inside `(...)` at `start` and the index after it, as path-to-regexp reads it."""
    depth, i = 1, start + 1
    if i < len(source) and source[i] == "?":
        raise PatternError(f"has a pattern starting with '?' at {i}")
    while i < len(source):
        char = source[i]
        if char == "\\":
            i += 2
            continue
        if char == ")":
            depth -= 1
            if depth == 0:
                break
        elif char == "(":
            depth += 1
            if source[i + 1 : i + 2] != "?":
                raise PatternError(f"has a capturing group inside a pattern at {i}; use (?:...)")
        i += 1
    if depth:
        raise PatternError(f"has an unbalanced pattern at {start}")
    pattern = source[start + 1 : i]
    if not pattern:
        raise PatternError(f"has an empty pattern at {start}")
    return pattern, i + 1


def _key(prefix: str, pattern: str, modifier: str) -> str:
    if not prefix:
        return f"({pattern}){modifier}"
    if modifier in ("+", "*"):
        repeat = "?" if modifier == "*" else ""
        return f"(?:{prefix}((?:{pattern})(?:{prefix}(?:{pattern}))*)){repeat}"
    return f"(?:{prefix}({pattern})){modifier}"


def parameters(destination: str) -> set[str]:
    """The `:name` and `$n` a destination uses."""
    return {name if name else f"${number}" for name, number in _DEST_PARAM.findall(destination)}


def substitute(destination: str, values: Mapping[str, str]) -> str:
    """`destination` with each `:name` and `$n` the source captured, percent-encoded.

    Text that looks like a parameter but names none (`https://host:8080/`) is kept as it is.
    """

    def replace(found: re.Match[str]) -> str:
        key = found.group(1) or f"${found.group(2)}"
        if key not in values:
            return found.group(0)
        return quote(values[key], safe="/")

    return _DEST_PARAM.sub(replace, destination)
