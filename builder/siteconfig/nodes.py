"""A config value with its path and line: typed reads that fail naming both.

Every reader (scalemesh.json, vercel.json, netlify.toml) walks its document through `Node`s,
so each error reads the same way: `scalemesh.json:12: redirects[3].source must start with /`.
Messages name fields, never quote values (a value may be anything the repository holds).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, NoReturn

from builder.errors import BuildError

Step = str | int
LineOf = Callable[[object, Step, tuple[Step, ...]], int | None]
"""(container, key or index, path of the child) → the child's line, if known."""
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")


class ConfigError(BuildError):
    """The config file is wrong; the message names the file, the line and the field."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}" if line else f"{source}: {message}")
        self.source = source
        self.line = line
        self.detail = message


@dataclass(frozen=True, slots=True)
class Node:
    value: Any
    steps: tuple[Step, ...]
    line: int | None
    source: str
    line_of: LineOf

    @property
    def path(self) -> str:
        return path_text(self.steps)

    def fail(self, message: str) -> NoReturn:
        raise ConfigError(self.source, self.line, f"{self.path or 'the file'} {message}")

    def warning(self, message: str) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.path} {message}" if self.path else f"{where}: {message}"

    def child(self, key: Step) -> Node:
        steps = (*self.steps, key)
        line = self.line_of(self.value, key, steps)
        return Node(self.value[key], steps, line or self.line, self.source, self.line_of)

    # --- typed reads ---------------------------------------------------------------------

    def fields(self, known: Collection[str], *, what: str = "") -> dict[str, Node]:
        """The object's fields; one not in `known` is an error naming it (and a near name)."""
        members = self.members()
        for name, node in members.items():
            if name not in known:
                node.unknown(known, what)
        return members

    def members(self) -> dict[str, Node]:
        if not isinstance(self.value, dict):
            self.fail("must be an object")
        return {key: self.child(key) for key in self.value}

    def unknown(self, known: Collection[str], what: str = "") -> NoReturn:
        guess = difflib.get_close_matches(str(self.steps[-1]), list(known), n=1)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        of = f" of {what}" if what else ""
        raise ConfigError(self.source, self.line, f"{self.path} is not a known field{of}{hint}")

    def items(self, *, most: int | None = None) -> list[Node]:
        if not isinstance(self.value, list):
            self.fail("must be an array")
        if most is not None and len(self.value) > most:
            self.fail(f"has {len(self.value):,} entries; at most {most:,} are allowed")
        return [self.child(index) for index in range(len(self.value))]

    def text(self, *, most: int = 4096, empty: bool = False) -> str:
        if not isinstance(self.value, str):
            self.fail("must be a string")
        if not empty and not self.value:
            self.fail("must not be empty")
        if len(self.value) > most:
            self.fail(f"is longer than {most:,} characters")
        if "\x00" in self.value:
            self.fail("contains a NUL character")
        return self.value

    def optional_text(self, *, most: int = 4096) -> str | None:
        """A string, or JSON null for "not set here"."""
        return None if self.value is None else self.text(most=most)

    def flag(self) -> bool:
        if not isinstance(self.value, bool):
            self.fail("must be true or false")
        return self.value

    def integer(self) -> int:
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            self.fail("must be a whole number")
        return self.value

    def strings(self, *, most: int, length: int = 4096) -> tuple[str, ...]:
        return tuple(item.text(most=length) for item in self.items(most=most))


def root(value: Any, source: str, line: int | None, line_of: LineOf) -> Node:
    """The node of a whole document."""
    return Node(value, (), line, source, line_of)


def path_text(steps: tuple[Step, ...]) -> str:
    """`redirects[3].source`; a key that is not a plain name is quoted: `branches["a/b"]`."""
    out = ""
    for step in steps:
        if isinstance(step, int):
            out += f"[{step}]"
        elif _PLAIN_KEY.fullmatch(step) and len(step) <= 64:
            out += f".{step}" if out else step
        else:
            shown = step if len(step) <= 64 else step[:64] + "..."
            out += "[" + _quote(shown) + "]"
    return out


def _quote(text: str) -> str:
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
