"""A builder on ECS and the API: fetch the spec once with the bootstrap token, send the log.

The task holds two variables: `SCALEMESH_BUILDER_API_URL` (its task definition) and
`SCALEMESH_BUILD_TOKEN` (its overrides, the build's one secret). The token names its deployment
(`<deployment id>.<secret>`), so both URLs follow from it: `POST <api>/internal/builds/<id>/spec`
once, and `POST <api>/internal/builds/<id>/events` with batches of JSON lines (`HttpSink`).
Standard library only. Connection failures, 5xx, 408 and 429 are tried again: a few times for
the spec, for up to `SINK_RETRY_FOR_S` for the log; any other refusal is final.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlsplit

from builder.events import LogEvent
from builder.logsink import LogSinkError
from builder.spec import BuildSpec, Masker, SpecError

TOKEN_VARIABLE = "SCALEMESH_BUILD_TOKEN"  # noqa: S105 - a variable's name
API_URL_VARIABLE = "SCALEMESH_BUILDER_API_URL"
TIMEOUT_S = 30.0
ATTEMPTS = 5
_RETRIED_STATUSES = frozenset({408, 429})
_TOKEN = re.compile(r"^[A-Za-z0-9._-]+$")
_NUL_ESCAPE = "\\u0000"
"""The API refuses any body holding this (PostgreSQL stores no NUL): sent as U+FFFD instead."""

SINK_RETRY_FOR_S = 300.0
"""How long the log sink keeps trying a batch through API restarts and outages (a Redis
restart behind the API answers 503 meanwhile) before the build fails for want of its log."""

Sleep = Callable[[float], None]
Clock = Callable[[], float]


class RemoteError(RuntimeError):
    """The API could not be reached, or refused the builder."""


class Refused(RemoteError):
    """The API answered with a final refusal; `detail` is its own words."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class _Transient(RemoteError):
    """Worth another try: the connection failed, or the API is busy or restarting."""


def build_url(api_url: str, token: str, what: str) -> str:
    """`<api>/internal/builds/<the token's deployment>/<what>`."""
    deployment_id, separator, secret = token.rpartition(".")
    if not (separator and deployment_id and secret and _TOKEN.match(token)):
        raise SpecError(f"{TOKEN_VARIABLE} is not a build token")
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecError(f"{API_URL_VARIABLE} must be an http(s) URL, not {api_url!r}")
    return f"{api_url.rstrip('/')}/internal/builds/{quote(deployment_id, safe='')}/{what}"


class _Connection:
    """One kept-alive connection to a URL's host; a failed request drops it for a fresh one."""

    def __init__(self, url: str, token: str, timeout: float) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.netloc
        self._path = parts.path
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": "scalemesh-builder"}
        self._connection: http.client.HTTPConnection | None = None

    def post(self, body: bytes, content_type: str) -> bytes:
        """The answer's body on 2xx; `Refused` or `_Transient` otherwise."""
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = kind(self._host, timeout=self._timeout)
        headers = {**self._headers, "Content-Type": content_type}
        try:
            self._connection.request("POST", self._path, body=body, headers=headers)
            response = self._connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise _Transient(str(exc) or type(exc).__name__) from None
        if response.will_close:
            self.close()
        status = response.status
        if 200 <= status < 300:
            return answer
        detail = _detail(answer) or response.reason
        if status >= 500 or status in _RETRIED_STATUSES:
            raise _Transient(f"{status}: {detail}")
        raise Refused(status, detail)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _detail(answer: bytes) -> str:
    """The `detail` of the API's `{"error", "detail"}` answer, else the start of the body."""
    try:
        parsed = json.loads(answer)
    except ValueError:
        return answer[:200].decode(errors="replace").strip()
    detail = parsed.get("detail") if isinstance(parsed, dict) else None
    if isinstance(detail, str):
        return detail
    return answer[:200].decode(errors="replace").strip()


def _post(
    connection: _Connection,
    body: bytes,
    content_type: str,
    attempts: int | None,
    sleep: Sleep,
    *,
    retry_for: float | None = None,
    clock: Clock = time.monotonic,
) -> bytes:
    """`connection.post`, tried again after transient failures, waiting longer each time (up
    to 8 s), until `attempts` tries or `retry_for` seconds, whichever limit is given, run out."""
    started = clock()
    attempt = 0
    while True:
        try:
            return connection.post(body, content_type)
        except _Transient:
            attempt += 1
            if attempts is not None and attempt >= attempts:
                raise
            if retry_for is not None and clock() - started >= retry_for:
                raise
        sleep(min(0.5 * 2 ** min(attempt - 1, 5), 8.0))


def fetch_spec(
    api_url: str,
    token: str,
    *,
    timeout: float = TIMEOUT_S,
    attempts: int = ATTEMPTS,
    sleep: Sleep = time.sleep,
) -> BuildSpec:
    """The build's spec, fetched once with its token. `RemoteError` when the API refused or
    could not be reached; `SpecError` when its answer is not a spec."""
    connection = _Connection(build_url(api_url, token, "spec"), token, timeout)
    try:
        answer = _post(connection, b"", "application/json", attempts, sleep)
    except Refused as exc:
        raise RemoteError(f"the API refused the build spec ({exc.status}): {exc.detail}") from None
    except _Transient as exc:
        raise RemoteError(f"the API could not be reached for the build spec: {exc}") from None
    finally:
        connection.close()
    try:
        raw = json.loads(answer)
    except ValueError:
        raise SpecError("the API's answer is not JSON") from None
    return BuildSpec.from_json(raw)


def encode(event: LogEvent) -> str:
    """One event as one JSON line (no NUL escapes: see `_NUL_ESCAPE`)."""
    return json.dumps(event).replace(_NUL_ESCAPE, "\\ufffd") + "\n"


class HttpSink:
    """Sends log events to the API in batches, from a background thread.

    Events wait at most `flush_interval` seconds, or until `batch_size` of them are waiting; a
    request carries at most `max_batch_bytes`. Past `max_pending` waiting events, `emit` blocks:
    an API that lags holds the build up rather than filling memory. A batch the API could not
    take (unreachable, 5xx, 408, 429) is sent again for up to `retry_for` seconds, so nothing
    is dropped while the API or its Redis restarts. A final refusal (a bad or dead token, the
    log past its limit) reaches the build as `LogSinkError`, in the API's words.
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        masker: Masker,
        *,
        flush_interval: float = 0.05,
        batch_size: int = 200,
        max_batch_bytes: int = 512 * 1024,
        max_pending: int = 20_000,
        timeout: float = TIMEOUT_S,
        attempts: int | None = None,
        retry_for: float = SINK_RETRY_FOR_S,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self._connection = _Connection(build_url(api_url, token, "events"), token, timeout)
        self._masker = masker
        self._token_masker = Masker((), always=[token])
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_batch_bytes = max_batch_bytes
        self._max_pending = max_pending
        self._attempts = attempts
        self._retry_for = retry_for
        self._sleep = sleep
        self._clock = clock
        self._pending: list[str] = []
        self._closed = False
        self._error: str | None = None
        self._ready = threading.Condition()
        self._sender = threading.Thread(target=self._send_forever, name="log-sink", daemon=True)
        self._sender.start()

    def emit(self, event: LogEvent) -> None:
        lines = [encode(piece) for piece in self._masker.prepare(event)]
        with self._ready:
            self._ready.wait_for(
                lambda: self._error is not None or len(self._pending) < self._max_pending
            )
            self._raise_if_failed()
            self._pending.extend(lines)
            if len(self._pending) >= self._batch_size:
                self._ready.notify_all()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        self._sender.join()
        self._connection.close()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise LogSinkError(self._error)

    def _send_forever(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(
                    lambda: self._closed or len(self._pending) >= self._batch_size,
                    timeout=self._flush_interval,
                )
                waiting, self._pending = self._pending, []
                closing = self._closed
                self._ready.notify_all()
            try:
                for body in self._bodies(waiting):
                    _post(
                        self._connection,
                        body,
                        "application/x-ndjson",
                        self._attempts,
                        self._sleep,
                        retry_for=self._retry_for,
                        clock=self._clock,
                    )
            except Exception as exc:  # whatever stops the sender must reach the build
                self._fail(exc)
                return
            if closing:
                return

    def _bodies(self, lines: list[str]) -> list[bytes]:
        bodies: list[bytes] = []
        current: list[bytes] = []
        size = 0
        for line in lines:
            data = line.encode()
            if current and (
                len(current) >= self._batch_size or size + len(data) > self._max_batch_bytes
            ):
                bodies.append(b"".join(current))
                current, size = [], 0
            current.append(data)
            size += len(data)
        if current:
            bodies.append(b"".join(current))
        return bodies

    def _fail(self, exc: Exception) -> None:
        if isinstance(exc, Refused):
            # The log's own limit is the build's failure, said as the API says it.
            message = (
                exc.detail
                if exc.status == 413
                else f"the API refused the build log ({exc.status}): {exc.detail}"
            )
        elif isinstance(exc, _Transient):
            message = f"the API could not be reached for the build log: {exc}"
        else:
            message = f"sending the build log failed: {exc or type(exc).__name__}"
        with self._ready:
            self._error = self._token_masker.mask(message)
            self._ready.notify_all()


def open_remote(
    environ: Mapping[str, str], *, sleep: Sleep = time.sleep
) -> tuple[BuildSpec, HttpSink]:
    """ECS mode: fetch the spec with `SCALEMESH_BUILD_TOKEN` from `SCALEMESH_BUILDER_API_URL`,
    and open the log sink (masking the spec's secrets and the token).

    A `SpecError` (a variable missing, a bad spec) or `RemoteError` (refused, unreachable) is
    also sent as the build's `end` event when the API still takes its log, so the deployment
    says why; then it is raised.
    """
    api_url = environ.get(API_URL_VARIABLE, "")
    token = environ.get(TOKEN_VARIABLE, "")
    if not api_url or not token:
        raise SpecError(f"{API_URL_VARIABLE} and {TOKEN_VARIABLE} must both be set")
    try:
        spec = fetch_spec(api_url, token, sleep=sleep)
    except (SpecError, RemoteError) as exc:
        _report(api_url, token, str(exc), sleep)
        raise
    return spec, HttpSink(api_url, token, Masker.for_spec(spec, bootstrap=token), sleep=sleep)


def _report(api_url: str, token: str, error: str, sleep: Sleep) -> None:
    end: LogEvent = {"type": "end", "ts": time.time(), "ok": False, "error": error}
    try:
        sink = HttpSink(api_url, token, Masker((), always=[token]), attempts=2, sleep=sleep)
        sink.emit(end)
        sink.close()
    except (SpecError, LogSinkError):
        return  # nowhere to say it but the builder's own stderr, which the caller writes to
