"""Where build log events go, with secrets masked: the `LogSink` protocol and `StdoutSink`.

The local runner reads JSON lines from the builder's stdout (`StdoutSink`); a builder on ECS
sends its events to the API (`builder.remote.HttpSink`).
"""

from __future__ import annotations

import json
import threading
from typing import Protocol, TextIO

from builder.events import LogEvent
from builder.spec import MASK, MAX_TEXT, MIN_SECRET_LENGTH, Masker, basic_auth

__all__ = [
    # Masking lives in `builder.spec`, shared with the app's runners; importable here too.
    "MASK",
    "MAX_TEXT",
    "MIN_SECRET_LENGTH",
    "LogEvent",
    "LogSink",
    "LogSinkError",
    "Masker",
    "StdoutSink",
    "basic_auth",
]


class LogSinkError(RuntimeError):
    """The log sink cannot take events (the reader gone, the API unreachable or refusing)."""


class LogSink(Protocol):
    def emit(self, event: LogEvent) -> None:
        """Send one event (masked first); it may be buffered until `close`."""

    def close(self) -> None:
        """Deliver everything buffered and release the connection."""


class StdoutSink:
    """One JSON object per line, flushed at once: the local runner reads these as they come."""

    def __init__(self, masker: Masker, stream: TextIO) -> None:
        self._masker = masker
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: LogEvent) -> None:
        lines = "".join(json.dumps(piece) + "\n" for piece in self._masker.prepare(event))
        with self._lock:
            try:
                self._stream.write(lines)
                self._stream.flush()
            except OSError as exc:  # the reader went away (a closed pipe)
                raise LogSinkError(f"writing the log to stdout failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            try:
                self._stream.flush()
            except OSError as exc:
                raise LogSinkError(f"writing the log to stdout failed: {exc}") from exc
