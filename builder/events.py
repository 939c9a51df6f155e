"""The build log's event: one type for the builder that writes events and the app that keeps them.

One JSON object per event; the bus that stores an event gives it its `seq`:
  {"type": "line", "ts": 1.0, "stream": "stdout"|"stderr"|"system", "text": "...", "step": "build"}
  {"type": "step", "ts": 1.0, "step": "install", "status": "start"}
  {"type": "step", "ts": 1.0, "step": "install", "status": "end", "ok": true, "duration_ms": 1234}
  {"type": "end", "ts": 1.0, "ok": true}
  {"type": "end", "ts": 1.0, "ok": false, "error": "install failed: npm ci exited with code 1"}
  {"type": "result", "ts": 1.0, "state": "ready"|"failed"|"cancelled", "error": "..."|null,
   "error_code": "build_failed"|...|null, "url": "..."|null}
The builder writes lines, steps and, last, one `end` (its `error` is one line naming the step);
the app writes the result when the deployment ends. Secrets are masked in `text` and `error`.
A `text` holds at most 8192 characters: a longer line arrives as several events. Readers ignore
types they do not know, so a newer builder's events pass through older apps.
"""

from __future__ import annotations

from typing import Required, TypedDict


class LogEvent(TypedDict, total=False):
    """Any log event: `type` says which of the shapes above it is."""

    type: Required[str]
    ts: float
    seq: int
    """Given by the bus that stored it: 1, 2, 3, ... per deployment."""
    stream: str
    text: str
    step: str | None
    status: str
    ok: bool
    duration_ms: int
    error: str | None
    error_code: str | None
    """On a `result`: the stable code of why it did not go live (`app.errors.ErrorCode`)."""
    state: str
    url: str | None
