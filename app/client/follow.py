"""Follow a deployment's build log over the API's websocket, resuming after a dropped connection.

The protocol is described in `app/logstream.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TextIO

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from app.client import ClientError
from app.client.api import EXPIRED, deployment_path
from app.logs.text import render_text
from builder.events import LogEvent
from builder.spec import STEPS

WS_OPEN_TIMEOUT_S = 10.0
WS_MAX_FRAME = 4 * 1024 * 1024
"""The server keeps frames near 256 KiB; this leaves room for one long event past that."""
RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Waits before each reconnection after a dropped log stream; then the command gives up."""

SPINNER = "|/-\\"

# Close codes of the log websocket (see `app.logstream`).
WS_NORMAL = 1000
WS_NOT_SIGNED_IN = 4401
WS_FORBIDDEN = 4403
WS_NOT_FOUND = 4404
WS_LAGGED = 4408


class LogPrinter:
    """Prints log events as timestamped lines; on a terminal, keeps a live step line under them."""

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out = out
        self.live = live
        self.step: str | None = None
        self.started = time.monotonic()
        self.frame = 0

    def show(self, event: LogEvent) -> None:
        kind = event.get("type")
        if kind == "step" and event.get("status") == "start":
            self.step = str(event.get("step"))
        elif kind == "end":
            self.step = "publishing"  # the build is over; the app moves the URLs next
        text = render_text([event])
        if not text:
            return  # heartbeats, `lagged`, and kinds newer than this client
        if self.live:
            self.out.write("\r\x1b[K" + text + self.status())
        else:
            self.out.write(text)
        self.out.flush()

    def tick(self) -> None:
        self.frame += 1
        self.out.write("\r\x1b[K" + self.status())
        self.out.flush()

    def status(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        if self.step in STEPS:
            where = f"[{STEPS.index(self.step) + 1}/{len(STEPS)}] {self.step}"
        else:
            where = self.step or "waiting for the build to start"
        return f"{SPINNER[self.frame % len(SPINNER)]} {where}  {elapsed // 60}:{elapsed % 60:02d}"

    def close(self) -> None:
        if self.live:
            self.out.write("\r\x1b[K")
            self.out.flush()


def ws_url(api: str, deployment_id: str, since: int) -> str:
    scheme, rest = api.split("://", 1)
    secure = "wss" if scheme == "https" else "ws"
    return f"{secure}://{rest}{deployment_path(deployment_id)}/logs/ws?since={since}"


async def follow(api: str, token: str, deployment_id: str, printer: LogPrinter) -> LogEvent:
    """Show every event of the deployment's log until its result, and return the result.

    A dropped connection is resumed from the last event shown (`since`), so nothing is shown
    twice or lost; `lagged` (the client fell behind) resumes at once.
    """
    since, failures, connected = 0, 0, False
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        result: LogEvent | None = None
        code: int | None = None
        reason = ""
        try:
            async with connect(
                ws_url(api, deployment_id, since),
                additional_headers=headers,
                open_timeout=WS_OPEN_TIMEOUT_S,
                max_size=WS_MAX_FRAME,
            ) as socket:
                connected = True
                with contextlib.suppress(ConnectionClosed):
                    async for message in socket:
                        for event in _events(message):
                            failures = 0
                            seq = event.get("seq")
                            since = seq if isinstance(seq, int) else since
                            result = event if event.get("type") == "result" else result
                            printer.show(event)
                code, reason = socket.close_code, socket.close_reason or ""
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise ClientError(
                f"{api} refused the log stream (HTTP {status}); is it a Scale Mesh API?"
            ) from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            if not connected:
                raise ClientError(
                    f"cannot reach the log stream of {api} ({exc or type(exc).__name__})"
                ) from None
            reason = str(exc)
        if result is not None:
            return result
        _refused(code, reason, deployment_id)
        if code == WS_LAGGED:
            continue
        if failures == len(RECONNECT_DELAYS_S):
            raise ClientError(
                f"lost the log stream ({reason or code}); "
                f"pick it up again with scalemesh logs {deployment_id} -f"
            )
        await asyncio.sleep(RECONNECT_DELAYS_S[failures])
        failures += 1


def _events(message: str | bytes) -> list[LogEvent]:
    try:
        events = json.loads(message)
    except ValueError:
        events = None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ClientError("the log stream sent something other than a list of events")
    return events


def _refused(code: int | None, reason: str, deployment_id: str) -> None:
    """Raise for a close that reconnecting cannot fix; return for a drop or `lagged`."""
    if code == WS_NOT_SIGNED_IN:
        raise ClientError(EXPIRED)
    if code in (WS_FORBIDDEN, WS_NOT_FOUND):
        raise ClientError(f"you have no deployment {deployment_id!r}")
    if code == WS_NORMAL:
        raise ClientError(
            f"the log stream ended without a result; see scalemesh logs {deployment_id}"
        )
    if code is not None and 4000 <= code < 5000 and code != WS_LAGGED:
        raise ClientError(f"the log stream was refused: {reason or code}")
