"""What the local runner makes of a builder's output: lines (cut when too long), and events.

The builder prints one JSON event a line on stdout; anything else it prints, and its stderr,
become `line` events of their own. Everything is masked again: the builder's masking is ours
too, but doing it twice costs little and survives its bugs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import cast

from builder.events import LogEvent
from builder.spec import Masker

MAX_LINE = 1024 * 1024
"""Longer output lines are cut at this many bytes, so one runaway line cannot exhaust memory.
Well above the longest JSON event the builder writes."""


async def lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    """The stream's lines without their line ends; a line whose end is not in sight is cut
    once `MAX_LINE` bytes of it are buffered."""
    pending = b""
    # After a cut at exactly the end of a line, its newline must not make an empty line.
    just_cut = False
    while chunk := await stream.read(MAX_LINE):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            if raw or not just_cut:
                yield decode(raw)
            just_cut = False
        while len(pending) >= MAX_LINE:
            yield decode(pending[:MAX_LINE])
            pending = pending[MAX_LINE:]
            just_cut = True
    if pending:
        yield decode(pending)


def decode(raw: bytes) -> str:
    return raw.removesuffix(b"\r").decode("utf-8", errors="replace")


def stdout_events(line: str, masker: Masker) -> list[LogEvent]:
    """The builder's JSON event, or system lines for anything else it printed."""
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return lines_of("system", line, masker)
    # The builder masks and cuts these itself; doing it again costs little and survives its bugs.
    return masker.prepare(cast(LogEvent, event))  # the JSON edge: a dict with a `type`


def stderr_events(line: str, masker: Masker) -> list[LogEvent]:
    # The builder's own tracebacks land here: they are how a crash gets explained.
    return lines_of("stderr", line, masker)


def lines_of(stream: str, text: str, masker: Masker) -> list[LogEvent]:
    return masker.prepare({"type": "line", "ts": time.time(), "stream": stream, "text": text})
