"""A rule's `has` and `missing` conditions (Vercel's): what a request must, or must not, carry.

Each is a header, cookie, query parameter or the host; with a `value` it must match it whole (a
regex, whose named groups a destination may use as `:name`), without one it need only be there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from builder.siterules.safety import MAX_MATCHED, MAX_UNBOUNDED, PatternError, check_pattern

TYPES = ("header", "cookie", "query", "host")
READS_HEADERS = frozenset({"header", "cookie"})
"""Condition types whose answer depends on more than the host, path and query."""


@dataclass(frozen=True, slots=True)
class RequestView:
    """What a rule may look at in a request. Its cookies and query are parsed once, when a
    condition first asks, however many rules ask after that."""

    path: str
    """Decoded, starting with `/`."""
    query: str = ""
    """Raw, without `?`."""
    host: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Lower-case names."""
    _parsed: dict[str, dict[str, str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    """`cookie` and `query` → their values by name, once parsed (None until a rule asks)."""

    def lookup(self, kind: str, key: str) -> str | None:
        if kind == "header":
            return self.headers.get(key.lower())
        if kind in ("cookie", "query"):
            parsed = self._parsed
            if parsed is None:
                parsed = {}
                object.__setattr__(self, "_parsed", parsed)
            values = parsed.get(kind)
            if values is None:
                values = parsed[kind] = self._parse(kind)
            return values.get(key)
        # The host, without a port: Vercel's `host` condition names a hostname.
        return self.host.partition(":")[0].lower()

    def _parse(self, kind: str) -> dict[str, str]:
        """The request's cookies or query parameters by name, the first of a repeat winning."""
        found: dict[str, str] = {}
        if kind == "cookie":
            # `name=value; name=value` (RFC 6265 §4.2).
            for pair in self.headers.get("cookie", "").split(";"):
                name, equals, value = pair.strip().partition("=")
                if equals:
                    found.setdefault(name, value)
        else:
            for name, value in parse_qsl(self.query, keep_blank_values=True):
                found.setdefault(name, value)
        return found


@dataclass(frozen=True, slots=True)
class Condition:
    kind: str
    key: str
    value: re.Pattern[str] | None

    def captures(self, request: RequestView) -> dict[str, str] | None:
        """The named groups of a matching value (empty without a value), or None: no match."""
        found = request.lookup(self.kind, self.key)
        if found is None:
            return None
        if self.value is None:
            return {}
        if len(found) > MAX_MATCHED:
            return None
        matched = self.value.fullmatch(found)
        return None if matched is None else matched.groupdict(default="")


def parse_conditions(items: Any, field_name: str) -> tuple[Condition, ...]:
    """The `has` or `missing` list of a rule; raises `ValueError` naming what is wrong."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ValueError(f"{field_name} must be a list")
    conditions: list[Condition] = []
    for position, item in enumerate(items):
        where = f"{field_name}[{position}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where} must be an object")
        kind = item.get("type")
        if kind not in TYPES:
            raise ValueError(f"{where}.type must be one of {', '.join(TYPES)}")
        key, value = item.get("key"), item.get("value")
        if kind == "host":
            # Vercel's host condition has only a value; a key stands in for it if given.
            value = value if value is not None else key
            key = ""
            if not isinstance(value, str) or not value:
                raise ValueError(f"{where}: a host condition needs a value")
        elif not isinstance(key, str) or not key:
            raise ValueError(f"{where}.key must be a non-empty string")
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where}.value must be a string")
        pattern = None
        if value is not None:
            try:
                translated, unbounded = check_pattern(value, named=True)
            except PatternError as exc:
                raise ValueError(f"{where}.value {exc}") from None
            if unbounded > MAX_UNBOUNDED:
                raise ValueError(f"{where}.value has more than {MAX_UNBOUNDED} unbounded repeats")
            pattern = re.compile(translated)
        conditions.append(Condition(str(kind), key, pattern))
    return tuple(conditions)


def holds(
    request: RequestView, has: tuple[Condition, ...], missing: tuple[Condition, ...]
) -> dict[str, str] | None:
    """The captures of every `has`, or None when one fails or a `missing` is there."""
    values: dict[str, str] = {}
    for condition in has:
        found = condition.captures(request)
        if found is None:
            return None
        values.update(found)
    if any(condition.captures(request) is not None for condition in missing):
        return None
    return values
