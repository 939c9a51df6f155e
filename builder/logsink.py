"""Where build log events go (JSON lines on stdout, or a Redis stream), with secrets masked."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterable
from typing import Any, Protocol, TextIO

import redis

from builder.spec import STDOUT_SINK, BuildSpec, SpecError

Event = dict[str, Any]
MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter env var values ("1", "true", "dev") are too common to mask without wrecking the log."""
MAX_TEXT = 8192
"""Characters per `line` event; longer lines become several events, cut after masking."""
STREAM_MAXLEN = 100_000
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_LINE_BREAKS = re.compile(r"[\r\n]+")


class LogSinkError(RuntimeError):
    """The log sink cannot take events (Redis unreachable or refusing writes)."""


class LogSink(Protocol):
    def emit(self, event: Event) -> None:
        """Send one event (masked first); it may be buffered until `close`."""

    def close(self) -> None:
        """Deliver everything buffered and release the connection."""


def basic_auth(token: str) -> str:
    """The base64 credential git sends for a GitHub token (`x-access-token:<token>`)."""
    return base64.b64encode(f"x-access-token:{token}".encode()).decode("ascii")


class Masker:
    """Replaces every secret in a text with `***`."""

    def __init__(self, secrets: Iterable[str], *, always: Iterable[str] = ()) -> None:
        """`secrets` are masked from `MIN_SECRET_LENGTH` characters; `always` at any length."""
        pieces = {secret for secret in always if secret}
        for secret in secrets:
            # A multi-line value (a PEM key) never shows whole in one log line: mask each line.
            for piece in [secret, *_LINE_BREAKS.split(secret)]:
                if len(piece) >= MIN_SECRET_LENGTH:
                    pieces.add(piece)
        # Longest first, so a secret containing another is masked whole.
        ordered = sorted(pieces, key=lambda piece: (-len(piece), piece))
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def for_spec(cls, spec: BuildSpec) -> Masker:
        tokens = [spec.token, basic_auth(spec.token)] if spec.token else []
        return cls(spec.env.values(), always=tokens)

    def mask(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text

    def prepare(self, event: Event) -> list[Event]:
        """The event masked, and a long `line` cut into events of at most `MAX_TEXT` chars."""
        event = dict(event)
        if isinstance(event.get("error"), str):
            event["error"] = self.mask(event["error"])
        if event.get("type") != "line":
            return [event]
        text = self.mask(str(event.get("text", "")))
        pieces = [text[i : i + MAX_TEXT] for i in range(0, len(text), MAX_TEXT)] or [""]
        return [{**event, "text": piece} for piece in pieces]


class StdoutSink:
    """One JSON object per line, flushed at once: the local runner reads these as they come."""

    def __init__(self, masker: Masker, stream: TextIO) -> None:
        self._masker = masker
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
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

    def emit(self, event: Event) -> None:
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
