"""The build's log as the builder writes it: lines, steps timed, the verdict, a size limit."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from builder.errors import BuildError
from builder.events import LogEvent
from builder.logsink import LogSink
from builder.upload import StorageError


def size_text(count: int) -> str:
    """A byte count as the log words it: `12.3 MB`, `4.5 kB`."""
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.1f} kB"


class LogTooLong(BuildError):
    """The build's commands printed more than the log limit allows."""


class Log:
    """Turns what the build does into log events for the sink."""

    def __init__(
        self, sink: LogSink, clock: Callable[[], float] = time.time, *, max_bytes: int = 0
    ) -> None:
        self._sink = sink
        self._clock = clock
        self._max_bytes = max_bytes
        self._output_bytes = 0
        self.step: str | None = None

    def line(self, text: str, stream: str = "system") -> None:
        self._emit({"type": "line", "stream": stream, "text": text, "step": self.step})

    def output(self, stream: str, text: str) -> None:
        """A line a command printed (the shape `shell.run` calls back with).

        Past `max_bytes` of it the command is stopped: a build cannot flood the log store."""
        self._output_bytes += len(text) + 1
        if self._max_bytes and self._output_bytes > self._max_bytes:
            raise LogTooLong(
                f"the build printed more than {self._max_bytes >> 20} MB of log "
                "(SCALEMESH_BUILD_MAX_LOG_MB)"
            )
        self.line(text, stream)

    @contextlib.contextmanager
    def running(self, step: str, durations: dict[str, int]) -> Iterator[None]:
        """Wrap one step in start/end events and record its duration in ms."""
        self.step = step
        started = time.monotonic()
        self._emit({"type": "step", "step": step, "status": "start"})
        ok = False
        try:
            yield
            ok = True
        except (BuildError, StorageError) as exc:
            self.line(f"Error: {exc}")
            raise
        finally:
            durations[step] = round((time.monotonic() - started) * 1000)
            self._emit(
                {
                    "type": "step",
                    "step": step,
                    "status": "end",
                    "ok": ok,
                    "duration_ms": durations[step],
                }
            )

    def end(self, error: str | None = None) -> None:
        """The build's last event: ok, or not with a one-line reason."""
        event: LogEvent = {"type": "end", "ok": error is None}
        if error is not None:
            event["error"] = " ".join(error.split())
        self._emit(event)

    def _emit(self, event: LogEvent) -> None:
        stamped = event.copy()
        stamped["ts"] = self._clock()
        self._sink.emit(stamped)
