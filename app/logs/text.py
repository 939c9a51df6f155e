"""A build log as a person reads it: timestamped lines, step markers, the result last."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from builder.events import LogEvent


def render_text(events: Iterable[LogEvent]) -> str:
    """The log as a person reads it: timestamped lines, step markers, the result last."""
    lines = [text for event in events if (text := _render(event)) is not None]
    return "".join(line + "\n" for line in lines)


def _render(event: LogEvent) -> str | None:
    kind = event.get("type")
    if kind == "line":
        ts = event.get("ts")
        clock = (
            datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S")
            if isinstance(ts, int | float)
            else "--:--:--"
        )
        return f"[{clock}] {str(event.get('text', '')).rstrip()}"
    if kind == "step":
        step = event.get("step", "?")
        if event.get("status") == "start":
            return f"── {step} ──"
        outcome = "ok" if event.get("ok") else "failed"
        duration = event.get("duration_ms")
        took = f" in {duration / 1000:.1f} s" if isinstance(duration, int | float) else ""
        return f"── {step}: {outcome}{took} ──"
    if kind == "result":
        state = event.get("state", "?")
        detail = event.get("error") or event.get("url")
        return f"── deployment {state}: {detail} ──" if detail else f"── deployment {state} ──"
    return None  # a newer builder's event kind: the JSON view has it, the text view skips it
