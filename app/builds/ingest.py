"""Read a builder's batch of log events (NDJSON) and keep only what a build may say.

A builder sends `line`, `step` and `end` events; only the app writes a `result`, so a build
cannot claim to have gone live. Every field is checked, anything else in an event is dropped
(`seq`, `url`, `error_code` are not the build's to set), and a bad line refuses the whole batch.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from app.errors import ErrorCode, UserError
from builder.events import LogEvent
from builder.spec import MAX_TEXT

MAX_ERROR = 2000
"""Characters in an `end` event's error: one line naming the step."""

StepName = Literal["clone", "detect", "install", "build", "upload"]
"""`builder.spec.STEPS`."""


class _Event(msgspec.Struct, tag_field="type", omit_defaults=True, forbid_unknown_fields=False):
    ts: float


class Line(_Event, tag="line"):
    stream: Literal["stdout", "stderr", "system"]
    text: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
    step: StepName | None = None


class Step(_Event, tag="step"):
    step: StepName
    status: Literal["start", "end"]
    ok: bool | None = None
    duration_ms: Annotated[int, msgspec.Meta(ge=0)] | None = None


class End(_Event, tag="end"):
    ok: bool
    error: Annotated[str, msgspec.Meta(max_length=MAX_ERROR)] | None = None


_DECODER = msgspec.json.Decoder(Line | Step | End)


def parse_batch(body: bytes) -> list[LogEvent]:
    """The events of an NDJSON body, in order; a `UserError` names the first bad line."""
    events: list[LogEvent] = []
    for number, raw in enumerate(body.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            event = _DECODER.decode(raw)
        except msgspec.DecodeError as exc:
            raise UserError(
                ErrorCode.BAD_LOG_EVENT,
                f"Log event {number}: {exc}. A build sends only line, step and end events.",
            ) from None
        except UnicodeDecodeError as exc:
            # What msgspec raises for invalid UTF-8 inside a string, not a DecodeError.
            raise UserError(
                ErrorCode.BAD_LOG_EVENT,
                f"Log event {number}: byte {exc.start} is not UTF-8. JSON is UTF-8 text.",
            ) from None
        plain: LogEvent = msgspec.to_builtins(event)  # the tag comes back as `type`
        events.append(plain)
    return events
