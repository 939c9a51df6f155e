"""Live build logs over a websocket: `WS /deployments/{id}/logs/ws?since=<seq>`.

The protocol, for the web log viewer and the CLI:
- Credentials (the session cookie or a bearer token) and the deployment are checked before
  any of the log is read. The cookie counts only when the socket is opened from a page of
  this site (its `Origin` is this host or `SCALEMESH_PUBLIC_URL`). A refusal is accepted
  only to be closed at once, with 4401 (not signed in), 4404 (no such deployment, or one whose
  project you may not see: `app.projects.access`), 1011 (GitHub could not say whether you may
  see it) or 4400 (a bad `since`): a handshake refused outright reaches a browser as a bare
  1006.
- Then text frames, each a JSON array of events, in order: every log event with seq > since
  exactly once (the replay, then live ones), ending with the `result` event, then close 1000.
  `{"type": "heartbeat", "ts"}` comes after `HEARTBEAT_S` without anything else.
  `{"type": "lagged", "seq"}` then close 4408: the client fell behind and resumes with
  `?since=<seq>`; close 1011: the log could not be read, reconnect with `since` too.

Per connection, a reader task pulls the log (`app.logs.tail_log`) into a bounded outbox and a
sender empties it, many events a frame. Neither bus waits for readers, so a slow client holds
up nobody but itself; one that takes no data for `LAG_S` while its outbox is full is lagged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

import msgspec
from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath

from app.errors import ErrorCode, UserError
from app.logs.archive import tail_log
from app.logs.bus import LogBus
from app.projects.access import Access, Role
from app.settings import Settings
from app.storage import Storage
from app.tables import Deployment
from app.users.http import SESSION_COOKIE, bearer_token
from app.users.service import UserService
from builder.events import LogEvent

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
"""A heartbeat frame goes out when nothing else was sent for this long."""
OUTBOX_EVENTS = 10_000
"""Events read from the log but not yet sent, per connection."""
LAG_S = 10.0
"""How long a full outbox may wait for the client to take data before it is `lagged`."""
FRAME_BYTES = 256 * 1024
"""A frame stops growing past this (one event may be longer): far below the 1 MiB a
`websockets` client accepts by default."""
MAX_SINCE_DIGITS = 18

# Close codes (RFC 6455 leaves 4000-4999 to applications; ours mirror HTTP statuses).
NORMAL = 1000
UNAVAILABLE = 1011
BAD_REQUEST = 4400
NOT_SIGNED_IN = 4401
NOT_FOUND = 4404
LAGGED = 4408

_encode = msgspec.json.Encoder().encode


class _Refused(Exception):
    """The handshake is answered with this close code and reason instead of a log."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Outbox:
    """Encoded events between the reader and the sender, at most `limit` of them."""

    def __init__(self, limit: int) -> None:
        self._events: deque[tuple[int, bytes]] = deque()
        self._limit = limit
        self._has_events = asyncio.Event()
        self._has_room = asyncio.Event()
        self._has_room.set()
        self.ending: int | None = None
        """The close code once the reader stopped: the log ended, failed, or the client lags."""

    async def put(self, event: LogEvent, lag_s: float) -> bool:
        """Queue one event; False when the client took no data for `lag_s` and is lagged."""
        if len(self._events) >= self._limit:
            self._has_room.clear()
            # wait_for, not asyncio.timeout: under Python 3.11 coverage loses track of the
            # caller once an asyncio.timeout has fired.
            try:
                await asyncio.wait_for(self._has_room.wait(), lag_s)
            except TimeoutError:
                self.end(LAGGED)
                return False
        self._events.append((int(event["seq"]), _encode(event)))
        self._has_events.set()
        return True

    def end(self, code: int) -> None:
        self.ending = code
        self._has_events.set()

    async def take(self, wait_s: float) -> list[tuple[int, bytes]]:
        """The next frame's events; [] when `wait_s` passed with none, or the log is over."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._has_events.wait(), wait_s)
        if self.ending == LAGGED:
            # What a lagging client has not taken it gets again when it resumes with `since`.
            self._events.clear()
        batch: list[tuple[int, bytes]] = []
        size = 0
        while self._events and (size < FRAME_BYTES or not batch):
            batch.append(self._events.popleft())
            size += len(batch[-1][1]) + 1
        if not self._events and self.ending is None:
            self._has_events.clear()
        self._has_room.set()
        return batch


class _Stream:
    """One accepted connection: the reader, the sender, and a watch for the client leaving."""

    def __init__(self, socket: WebSocket[Any, Any, Any], deployment_id: str, since: int) -> None:
        self.socket = socket
        self.deployment_id = deployment_id
        self.sent = since
        """The seq of the last event handed to the socket."""
        self.outbox = _Outbox(OUTBOX_EVENTS)

    async def run(self, events: AsyncGenerator[LogEvent | None, None]) -> None:
        reader = asyncio.create_task(self._read(events))
        watcher = asyncio.create_task(_until_disconnected(self.socket))
        sender = asyncio.create_task(self._send())
        try:
            await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, watcher, sender):
                task.cancel()
            await asyncio.gather(reader, watcher, sender, return_exceptions=True)
        if not sender.cancelled():
            sender.result()  # a bug in the sender must not pass silently

    async def _read(self, events: AsyncGenerator[LogEvent | None, None]) -> None:
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    # None is the tail's own idle tick; the sender keeps its own heartbeat.
                    if event is not None and not await self.outbox.put(event, LAG_S):
                        return
        except Exception as exc:  # whatever stops the log must reach the client as a close
            log.warning(
                "log stream failed",
                extra={"deployment_id": self.deployment_id, "error": str(exc)},
            )
            self.outbox.end(UNAVAILABLE)
            return
        self.outbox.end(NORMAL)

    async def _send(self) -> None:
        socket, heartbeat_s = self.socket, HEARTBEAT_S
        with contextlib.suppress(WebSocketDisconnect, OSError):  # the client went away
            while True:
                batch = await self.outbox.take(heartbeat_s)
                if batch:
                    await socket.send_data(b"[" + b",".join(p for _, p in batch) + b"]")
                    self.sent = batch[-1][0]
                    continue
                ending = self.outbox.ending
                if ending is None:
                    await _send_events(socket, {"type": "heartbeat", "ts": round(time.time(), 3)})
                    continue
                if ending == LAGGED:
                    await _send_events(socket, {"type": "lagged", "seq": self.sent})
                    await socket.close(LAGGED, "Too far behind: reconnect with since=<seq>.")
                elif ending == UNAVAILABLE:
                    await socket.close(UNAVAILABLE, "The log is unavailable: reconnect later.")
                else:
                    await socket.close(NORMAL)
                return


async def _send_events(socket: WebSocket[Any, Any, Any], *events: LogEvent) -> None:
    await socket.send_data(_encode(list(events)))


async def _until_disconnected(socket: WebSocket[Any, Any, Any]) -> None:
    while (await socket.receive())["type"] != "websocket.disconnect":
        pass  # the protocol has clients send nothing; whatever they do send is dropped


# --- the handshake ----------------------------------------------------------------------------


def _from_this_site(socket: WebSocket[Any, Any, Any], settings: Settings) -> bool:
    """Whether the page that opened the socket is one of ours (no Origin: not a browser)."""
    origin = socket.headers.get("origin")
    if origin is None:
        return True
    where = urlsplit(origin).netloc
    return where in (socket.headers.get("host"), urlsplit(settings.public_url).netloc)


async def _check_access(
    socket: WebSocket[Any, Any, Any],
    settings: Settings,
    users: UserService,
    access: Access,
    deployment_id: str,
) -> tuple[str, int]:
    """The deployment's canonical id and `since`, or `_Refused`."""
    # `bearer_token` reads only headers, which a websocket has too.
    bearer = bearer_token(socket)
    cookie = None if bearer else socket.cookies.get(SESSION_COOKIE)
    if cookie and not _from_this_site(socket, settings):
        # Browsers send the cookie along whoever's page opens the socket, and sites deployed
        # here are same-site with the dashboard: only the dashboard's own pages may use it.
        cookie = None
    if bearer:
        user = await users.user_for_token(bearer)
    else:
        # An API token never works as the cookie (`app.users.http`), here neither.
        user = await users.user_for_token(cookie, api_tokens=False) if cookie else None
    if user is None:
        raise _Refused(NOT_SIGNED_IN, "Sign in first: send the session cookie or a bearer token.")
    try:
        key = str(uuid.UUID(deployment_id))
    except ValueError:
        raise _Refused(NOT_FOUND, "There is no such deployment.") from None
    project_id = await (
        Deployment.select(Deployment.project)
        .where(Deployment._meta.primary_key == key)
        .output(as_list=True)
    )
    if not project_id:
        raise _Refused(NOT_FOUND, "There is no such deployment.")
    try:
        await access.project_by_id(user.id, int(project_id[0]), Role.PULL)
    except UserError as exc:
        if exc.code is ErrorCode.GITHUB_UNAVAILABLE:
            raise _Refused(UNAVAILABLE, "GitHub did not answer; reconnect in a minute.") from None
        # One you may not see answers as a missing one does.
        raise _Refused(NOT_FOUND, "There is no such deployment.") from None
    raw = socket.query_params.get("since", "0")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_SINCE_DIGITS):
        raise _Refused(BAD_REQUEST, "since must be a whole number >= 0 (the last seq you got).")
    return key, int(raw)


@websocket("/deployments/{deployment_id:str}/logs/ws")
async def follow_log(
    socket: WebSocket[Any, Any, Any],
    deployment_id: FromPath[str],
    settings: NamedDependency[Settings],
    users: NamedDependency[UserService],
    access: NamedDependency[Access],
    log_bus: NamedDependency[LogBus],
    storage: NamedDependency[Storage],
) -> None:
    """Every log event after `since`, then live ones, then the result; then close 1000."""
    try:
        key, since = await _check_access(socket, settings, users, access, deployment_id)
    except _Refused as refused:
        # Accepted only to be closed: a handshake refused outright reaches browsers as a bare
        # 1006, without the code that tells the viewer what to do.
        await socket.accept()
        await socket.close(refused.code, refused.reason)
        return
    await socket.accept()
    await _Stream(socket, key, since).run(
        tail_log(log_bus, storage, key, since, heartbeat=HEARTBEAT_S)
    )


ROUTES = [follow_log]
