"""Where build log events go (JSON lines on stdout, or a Redis stream), with secrets masked."""

from __future__ import annotations

import json
import threading
from typing import Protocol, TextIO

import redis

from builder.events import LogEvent
from builder.spec import (
    MASK,
    MAX_TEXT,
    MIN_SECRET_LENGTH,
    STDOUT_SINK,
    BuildSpec,
    Masker,
    SpecError,
    basic_auth,
)

__all__ = [
    # Masking lives in `builder.spec`, shared with the app's runners; importable here too.
    "MASK",
    "MAX_TEXT",
    "MIN_SECRET_LENGTH",
    "LogEvent",
    "LogSink",
    "LogSinkError",
    "Masker",
    "RedisSink",
    "StdoutSink",
    "basic_auth",
    "open_sink",
]
STREAM_MAXLEN = 100_000
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class LogSinkError(RuntimeError):
    """The log sink cannot take events (Redis unreachable or refusing writes)."""


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


class RedisSink:
    """Appends events to a Redis stream whose entry ids `0-1`, `0-2`, ... are the events' seq.

    A background thread sends buffered events in one pipeline every `flush_interval` seconds,
    or as soon as `batch_size` are waiting, so a chatty build does not pay a round trip a line.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        masker: Masker,
        *,
        flush_interval: float = 0.05,
        batch_size: int = 200,
        max_pending: int = 20_000,
    ) -> None:
        self._stream = stream
        self._masker = masker
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._pending: list[str] = []
        self._closed = False
        self._error: str | None = None
        self._ready = threading.Condition()
        self._client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=10)
        try:
            self._client.ping()
        except redis.RedisError as exc:
            self._client.close()
            raise LogSinkError(f"cannot reach the log stream's Redis: {exc}") from None
        self._sender = threading.Thread(target=self._send_forever, name="log-sink", daemon=True)
        self._sender.start()

    def emit(self, event: LogEvent) -> None:
        payloads = [json.dumps(piece) for piece in self._masker.prepare(event)]
        with self._ready:
            # Back-pressure: a stalled Redis holds the build up rather than filling memory.
            self._ready.wait_for(
                lambda: self._error is not None or len(self._pending) < self._max_pending
            )
            self._raise_if_failed()
            self._pending.extend(payloads)
            if len(self._pending) >= self._batch_size:
                self._ready.notify_all()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        self._sender.join()
        self._client.close()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise LogSinkError(f"writing to the log stream failed: {self._error}")

    def _send_forever(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(
                    lambda: self._closed or len(self._pending) >= self._batch_size,
                    timeout=self._flush_interval,
                )
                batch, self._pending = self._pending, []
                closing = self._closed
                self._ready.notify_all()
            try:
                self._send(batch)
            except Exception as exc:  # whatever stops the sender must reach the build
                with self._ready:
                    self._error = str(exc) or type(exc).__name__
                    self._ready.notify_all()
                return
            if closing:
                return

    def _send(self, batch: list[str]) -> None:
        if not batch:
            return
        pipe = self._client.pipeline(transaction=False)
        for payload in batch:
            # Entry id `0-*`: Redis numbers the entries 0-1, 0-2, ..., so the id's sequence
            # part is the event's seq, with no counter of our own to keep in step.
            pipe.xadd(
                self._stream,
                {"e": payload},
                id="0-*",
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
        pipe.execute()


def open_sink(spec: BuildSpec, masker: Masker, stdout: TextIO) -> LogSink:
    """The sink `spec.log_sink` names; a bad value is a `SpecError`."""
    if spec.log_sink == STDOUT_SINK:
        return StdoutSink(masker, stdout)
    if spec.log_sink.startswith(_REDIS_SCHEMES):
        return RedisSink(spec.log_sink, spec.log_stream, masker)
    scheme = spec.log_sink.split("://", 1)[0]
    raise SpecError(f"log sink must be 'stdout' or a redis:// URL, not {scheme!r}")
