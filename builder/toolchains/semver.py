"""npm's version ranges, the subset `.nvmrc` and `engines.node` use, in the standard library.

Exact versions (`22.11.0`, `v22.11.0`), partial ones (`22`, `22.x`, `22.11`), `*`, the
operators `>= <= > < =`, `^` and `~`, hyphen ranges (`18 - 20`), sets of comparators joined by
spaces (`>=18 <23`) and unions (`^18 || ^20`). nvm's names are left to the caller (`lts/*`).
Prerelease versions are never chosen (npm does not either, unless a range names one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

Version = tuple[int, int, int]

_RELEASE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_PARTIAL = re.compile(r"[v=]*(?:(\d+|[xX*])(?:\.(\d+|[xX*])(?:\.(\d+|[xX*]))?)?)?")
_COMPARATOR = re.compile(r"(>=|<=|>|<|=|\^|~>?)?\s*(\S*)")
_HYPHEN = re.compile(r"^\s*(\S+)\s+-\s+(\S+)\s*$")
_SPACED_OPERATOR = re.compile(r"(>=|<=|>|<|=|\^|~>?)\s+")
MAX_SPEC = 256
"""A range longer than this is refused: no real one is."""


class RangeError(ValueError):
    """A version range we cannot read; the message quotes it."""


@dataclass(frozen=True, slots=True)
class _Bound:
    operator: str  # one of >=, >, <, <=
    version: Version

    def allows(self, version: Version) -> bool:
        if self.operator == ">=":
            return version >= self.version
        if self.operator == ">":
            return version > self.version
        if self.operator == "<":
            return version < self.version
        return version <= self.version


@dataclass(frozen=True, slots=True)
class Range:
    """A parsed range: versions meeting every bound of any one of its sets."""

    text: str
    sets: tuple[tuple[_Bound, ...], ...]

    def allows(self, version: Version) -> bool:
        return any(all(bound.allows(version) for bound in bounds) for bounds in self.sets)

    def best(self, versions: Iterable[Version]) -> Version | None:
        """The highest of `versions` in the range, or None."""
        return max((version for version in versions if self.allows(version)), default=None)


def release(text: str) -> Version | None:
    """`22.11.0` or `v22.11.0` as a tuple; None for anything else (prereleases included)."""
    match = _RELEASE.fullmatch(text.strip())
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def parse(text: str) -> Range:
    """The range `text` stands for; raises `RangeError` naming it when it is not one."""
    if len(text) > MAX_SPEC:
        raise RangeError(f"a version range of {len(text)} characters is too long")
    sets = []
    for alternative in text.split("||"):
        try:
            sets.append(_parse_set(alternative))
        except RangeError:
            raise RangeError(f"{text.strip()!r} is not a version or version range") from None
    return Range(text.strip(), tuple(sets))


def _parse_set(text: str) -> tuple[_Bound, ...]:
    if hyphen := _HYPHEN.match(text):
        low, _ = _partial(hyphen.group(1))
        high, high_given = _partial(hyphen.group(2))
        return (_Bound(">=", low), *_upper(high, high_given))
    bounds: list[_Bound] = []
    for word in _SPACED_OPERATOR.sub(r"\1", text).split():
        bounds += _comparator(word)
    return tuple(bounds)  # none at all: "" and "*" allow every version


def _comparator(word: str) -> list[_Bound]:
    match = _COMPARATOR.fullmatch(word)
    assert match is not None  # noqa: S101 - the pattern matches every word (both groups optional)
    operator, rest = match.group(1) or "", match.group(2)
    version, given = _partial(rest)
    if given == 0:
        # `*`, `x`, `>=*`: any version; `<*` and `>*` match nothing, as in npm.
        return [_Bound("<", (0, 0, 0))] if operator in ("<", ">") else []
    if operator in ("", "="):
        return [_Bound(">=", version), *_upper(version, given)]
    if operator == ">=":
        return [_Bound(">=", version)]
    if operator == "<":
        return [_Bound("<", version)]
    if operator == "<=":
        return _upper(version, given)
    if operator == ">":
        return [_Bound(">", version) if given == 3 else _Bound(">=", _bump(version, given - 1))]
    if operator == "^":
        return [_Bound(">=", version), _Bound("<", _caret_top(version, given))]
    # `~` and `~>`: patch updates, or minor ones when only the major is given.
    return [_Bound(">=", version), _Bound("<", _bump(version, 0 if given == 1 else 1))]


def _partial(text: str) -> tuple[Version, int]:
    """(version with missing parts 0, how many parts were given before the first wildcard)."""
    match = _PARTIAL.fullmatch(text)
    if match is None:
        raise RangeError(text)
    parts: list[int] = []
    for part in match.groups():
        if part is None or not part.isdigit():
            break
        parts.append(int(part))
    given = len(parts)
    parts += [0] * (3 - given)
    return (parts[0], parts[1], parts[2]), given


def _upper(version: Version, given: int) -> list[_Bound]:
    """The top of a partial version: `<=1.2.3`, `<1.3.0` for 1.2, `<2.0.0` for 1, none for *."""
    if given == 3:
        return [_Bound("<=", version)]
    if given == 0:
        return []
    return [_Bound("<", _bump(version, given - 1))]


def _bump(version: Version, index: int) -> Version:
    """`version` with part `index` one higher and the parts after it zero."""
    parts = [*version[:index], version[index] + 1, 0, 0][:3]
    return parts[0], parts[1], parts[2]


def _caret_top(version: Version, given: int) -> Version:
    """`^`: the first non-zero part given may not change (`^0.2.3` < 0.3.0, `^0.0` < 0.1.0)."""
    for index in range(max(given, 1)):
        if version[index] != 0 or index == given - 1:
            return _bump(version, index)
    return _bump(version, 0)  # pragma: no cover - the loop returns for every given >= 1
