"""A strict JSON reader that remembers the line of every object key and array item.

Python's `json` keeps no positions, and a config error must name its line
(`scalemesh.json:12: redirects[3].source must start with /`). Each string is decoded by the
standard library's `json`; the rest is a small recursive descent with a depth limit, so a
hostile file nested a million levels deep is refused, not a `RecursionError`.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 64
"""Objects and arrays nested deeper than this are refused; no config needs more than a few."""
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*"', re.DOTALL)
_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_CONSTANTS: tuple[tuple[str, Any], ...] = (("true", True), ("false", False), ("null", None))


class JsonSyntaxError(ValueError):
    """The text is not JSON; `line` is where the reader gave up. Never quotes the text."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True, slots=True)
class Located:
    """A decoded document and the line of each key and item in it."""

    value: Any
    line: int
    """The line the top value starts on."""
    lines: dict[int, dict[str, int] | list[int]] = field(repr=False)
    """By `id()` of each object (key → line) and array (index → line) in `value`; the ids are
    stable because `value` holds every one of them for as long as this record lives."""

    def line_of(self, container: object, key: str | int) -> int | None:
        """The line of `container[key]`; None when `container` is not from this document."""
        lines = self.lines.get(id(container))
        if isinstance(lines, dict) and isinstance(key, str):
            return lines.get(key)
        if isinstance(lines, list) and isinstance(key, int) and 0 <= key < len(lines):
            return lines[key]
        return None


def loads(text: str) -> Located:
    """`text` decoded, with positions; raises `JsonSyntaxError` naming the line."""
    return _Reader(text).document()


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.newlines = [match.start() for match in re.finditer("\n", text)]
        self.lines: dict[int, dict[str, int] | list[int]] = {}

    def line(self, position: int) -> int:
        return bisect.bisect_left(self.newlines, position) + 1

    def fail(self, message: str, position: int) -> JsonSyntaxError:
        return JsonSyntaxError(message, self.line(position))

    def skip(self, position: int) -> int:
        match = _SPACE.match(self.text, position)
        assert match is not None  # noqa: S101 - the pattern matches the empty string
        return match.end()

    def document(self) -> Located:
        start = self.skip(0)
        value, end = self.value(start, 0)
        end = self.skip(end)
        if end != len(self.text):
            raise self.fail("unexpected text after the JSON value", end)
        return Located(value=value, line=self.line(start), lines=self.lines)

    def value(self, position: int, depth: int) -> tuple[Any, int]:
        """The value starting at `position` (no space before it) and where it ends."""
        if position >= len(self.text):
            raise self.fail("the file ends where a value was expected", position)
        char = self.text[position]
        if char == "{":
            return self.object(position, depth + 1)
        if char == "[":
            return self.array(position, depth + 1)
        if char == '"':
            return self.string(position)
        number = _NUMBER.match(self.text, position)
        if number is not None:
            return self.number(number), number.end()
        for word, constant in _CONSTANTS:
            if self.text.startswith(word, position):
                return constant, position + len(word)
        raise self.fail(
            "expected a value (a string, number, object, array, true, false or null)", position
        )

    def string(self, position: int) -> tuple[str, int]:
        found = _STRING.match(self.text, position)
        if found is None:
            raise self.fail("a string is not closed, or holds a control character", position)
        try:
            value: str = json.loads(found.group())
        except json.JSONDecodeError as exc:
            # Its message names what is wrong (an invalid escape), never the text itself.
            raise self.fail(exc.msg.lower(), position) from None
        return value, found.end()

    def number(self, match: re.Match[str]) -> int | float:
        if match.group(1) or match.group(2):
            return float(match.group())
        try:
            return int(match.group())
        except ValueError:  # past Python's digit limit for int(): nobody's config needs that
            raise self.fail("a number is too long", match.start()) from None

    def enter(self, position: int, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.fail(
                f"objects and arrays are nested deeper than {MAX_DEPTH} levels", position
            )

    def object(self, position: int, depth: int) -> tuple[dict[str, Any], int]:
        self.enter(position, depth)
        result: dict[str, Any] = {}
        lines: dict[str, int] = {}
        self.lines[id(result)] = lines
        position = self.skip(position + 1)
        if self.text.startswith("}", position):
            return result, position + 1
        while True:
            if not self.text.startswith('"', position):
                raise self.fail("expected a key in double quotes", position)
            key_at = position
            key, position = self.string(position)
            if key in result:
                raise self.fail(f"the key {_shown(key)} appears twice in one object", key_at)
            position = self.skip(position)
            if not self.text.startswith(":", position):
                raise self.fail("expected ':' after a key", position)
            position = self.skip(position + 1)
            result[key], position = self.value(position, depth)
            lines[key] = self.line(key_at)
            position = self.skip(position)
            if self.text.startswith("}", position):
                return result, position + 1
            if not self.text.startswith(",", position):
                raise self.fail("expected ',' or '}' after a value in an object", position)
            position = self.skip(position + 1)

    def array(self, position: int, depth: int) -> tuple[list[Any], int]:
        self.enter(position, depth)
        result: list[Any] = []
        lines: list[int] = []
        self.lines[id(result)] = lines
        position = self.skip(position + 1)
        if self.text.startswith("]", position):
            return result, position + 1
        while True:
            lines.append(self.line(position))
            item, position = self.value(position, depth)
            result.append(item)
            position = self.skip(position)
            if self.text.startswith("]", position):
                return result, position + 1
            if not self.text.startswith(",", position):
                raise self.fail("expected ',' or ']' after a value in an array", position)
            position = self.skip(position + 1)


def _shown(key: str) -> str:
    """A key for a message: quoted, and cut short (it is the file's text)."""
    return repr(key if len(key) <= 40 else key[:40] + "...")
