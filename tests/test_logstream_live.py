"""The log websocket over a real network: close codes, a stalled viewer, a builder process.

The app runs under uvicorn in a thread, on a loopback socket bound before it starts; clients
are `websockets`. A client that stops reading, and the close codes a real client sees, only
show up this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import websockets
from litestar import Litestar

from app import logstream
from app.asgi import create_app
from app.builds.tokens import BuildTokens
from app.deployments.lifecycle import DeploymentState
from app.deployments.transitions import move
from app.logs.bus import LogBus
from app.settings import Settings
from builder.events import LogEvent
from tests.support.api import PASSWORD, OfflineResolver, bearer
from tests.support.logs import line
from tests.support.logstream import UNKNOWN_ID, seqs
from tests.support.processes import ROOT
from tests.support.servers import Serving, uvicorn_in_thread
from tests.support.services import redis_url
from tests.support.waiting import WAIT_S, eventually


@dataclass
class Live:
    app: Litestar
    serving: Serving

    @property
    def port(self) -> int:
        return self.serving.port

    def ws_url(self, deployment_id: str, since: int | None = None) -> str:
        query = "" if since is None else f"?since={since}"
        return f"ws://127.0.0.1:{self.port}/deployments/{deployment_id}/logs/ws{query}"

    def http(self) -> httpx.Client:
        # trust_env=False: a proxy set in the environment must not capture loopback requests.
        return httpx.Client(base_url=self.serving.url, timeout=WAIT_S, trust_env=False)

    def in_app(self, make: Callable[[], Any]) -> Any:
        """Run a coroutine on the server's own event loop (the memory bus lives there)."""
        return self.serving.call(make)


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[Live]:
    app = create_app(settings, ref_resolver=OfflineResolver(), reconcile=False)
    with uvicorn_in_thread(app) as running:
        yield Live(app, running)


@dataclass
class Account:
    token: str
    deployment_id: str


def sign_up_and_deploy(live: Live) -> Account:
    account = {"email": "ada@example.com", "password": PASSWORD}
    with live.http() as http:
        assert http.post("/user/signup", json=account).status_code == 201
        token = http.post("/user/login", json=account).json()["token"]
        project = {"name": "web", "repo": "octo/web"}
        assert http.post("/project", json=project, headers=bearer(token)).status_code == 201
        deployment = http.post("/deploy", json={"project": "web"}, headers=bearer(token))
    assert deployment.status_code == 202
    return Account(token, deployment.json()["id"])


def cancel(live: Live, account: Account) -> None:
    with live.http() as http:
        response = http.post(
            f"/deployments/{account.deployment_id}/cancel", headers=bearer(account.token)
        )
    assert response.status_code == 200


async def read_all(url: str, token: str, **options: Any) -> tuple[list[dict[str, Any]], int]:
    events: list[dict[str, Any]] = []
    async with websockets.connect(url, additional_headers=bearer(token), **options) as ws:
        with contextlib.suppress(websockets.ConnectionClosedOK, websockets.ConnectionClosedError):
            while True:
                events.extend(json.loads(await asyncio.wait_for(ws.recv(), WAIT_S)))
    assert ws.close_code is not None
    return events, ws.close_code


@pytest.fixture
def settings_for(
    make_settings: Callable[..., Settings], database_url: str
) -> Callable[..., Settings]:
    def make(**overrides: str) -> Settings:
        return make_settings(SCALEMESH_DATABASE_URL=database_url, **overrides)

    return make


def test_a_real_client_sees_the_refusal_codes(settings_for: Callable[..., Settings]) -> None:
    with serving(settings_for()) as live:
        account = sign_up_and_deploy(live)

        async def codes() -> list[int | None]:
            found = []
            for url, headers in [
                (live.ws_url(account.deployment_id), {}),
                (live.ws_url(UNKNOWN_ID), bearer(account.token)),
            ]:
                async with websockets.connect(url, additional_headers=headers) as ws:
                    with pytest.raises(websockets.ConnectionClosed):
                        await asyncio.wait_for(ws.recv(), WAIT_S)
                found.append(ws.close_code)
            return found

        assert asyncio.run(codes()) == [4401, 4404]


# --- a viewer that stops reading -------------------------------------------------------------

COUNT = 2500
"""8 KB each: far more than the socket buffers between the server and a client hold."""


class OpenTails:
    """Counts the live bus's open tails: one per connected viewer until its reader stops."""

    def __init__(self, bus: LogBus) -> None:
        self.open = 0
        tail = bus.tail

        async def counted(
            deployment_id: str, since: int = 0, *, heartbeat: float = 15.0
        ) -> AsyncGenerator[LogEvent | None, None]:
            self.open += 1
            try:
                async with contextlib.aclosing(
                    tail(deployment_id, since, heartbeat=heartbeat)
                ) as events:
                    async for event in events:
                        yield event
            finally:
                self.open -= 1

        bus.tail = counted  # type: ignore[method-assign]


async def stalled_viewer(live: Live, account: Account) -> websockets.ClientConnection:
    """A viewer with a small receive buffer that reads nothing until the test says so."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", live.port))
    return await websockets.connect(
        live.ws_url(account.deployment_id),
        sock=sock,
        additional_headers=bearer(account.token),
        max_queue=1,
        compression=None,  # else the repeated text shrinks to nothing on the wire
    )


def write_all(live: Live, account: Account) -> None:
    """The builder's side: every line appended to the live bus, on the server's loop."""
    bus = live.app.state.services.bus

    async def write() -> None:
        for n in range(COUNT):
            await bus.append(account.deployment_id, line(f"{n:05} " + "x" * 8000))

    live.in_app(write)


def test_a_stalled_viewer_holds_up_neither_the_builder_nor_other_viewers(
    settings_for: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logstream, "OUTBOX_EVENTS", 20)
    monkeypatch.setattr(logstream, "LAG_S", 3600.0)  # never lagged here: it just stalls
    with serving(settings_for()) as live:
        account = sign_up_and_deploy(live)
        tails = OpenTails(live.app.state.services.bus)

        async def scenario() -> tuple[list[dict[str, Any]], int, int]:
            stalled = await stalled_viewer(live, account)
            fast = asyncio.create_task(read_all(live.ws_url(account.deployment_id), account.token))
            await eventually(lambda: tails.open == 2, what="both viewers following")
            # Were appends held up by the stalled viewer, this would wait for its LAG_S.
            await asyncio.wait_for(asyncio.to_thread(write_all, live, account), WAIT_S)
            await asyncio.to_thread(cancel, live, account)
            fast_events, fast_code = await asyncio.wait_for(fast, WAIT_S)
            still_following = tails.open  # the stalled viewer, which has read nothing yet
            stalled.transport.abort()  # it leaves without a close handshake it could not finish
            await stalled.wait_closed()
            return fast_events, fast_code, still_following

        fast_events, fast_code, still_following = asyncio.run(scenario())

    assert seqs(fast_events) == list(range(1, COUNT + 2))
    assert fast_events[-1]["type"] == "result"
    assert fast_code == 1000
    assert still_following == 1


def test_a_stalled_viewer_is_lagged_and_resumes_losing_nothing(
    settings_for: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logstream, "OUTBOX_EVENTS", 20)
    monkeypatch.setattr(logstream, "LAG_S", 0.2)
    with serving(settings_for()) as live:
        account = sign_up_and_deploy(live)
        tails = OpenTails(live.app.state.services.bus)

        async def scenario() -> tuple[list[dict[str, Any]], int | None, list[dict[str, Any]], int]:
            stalled = await stalled_viewer(live, account)
            await eventually(lambda: tails.open == 1, what="the viewer following")
            await asyncio.to_thread(write_all, live, account)
            await asyncio.to_thread(cancel, live, account)
            # Its outbox full and nothing taken for LAG_S, the server gives up on the viewer.
            await eventually(lambda: tails.open == 0, what="the stalled viewer being lagged")
            # Only now does it read: what it was sent, then `lagged`, then 4408.
            first: list[dict[str, Any]] = []
            with contextlib.suppress(websockets.ConnectionClosedError):
                while True:
                    first.extend(json.loads(await asyncio.wait_for(stalled.recv(), WAIT_S)))
            resumed, resumed_code = await read_all(
                live.ws_url(account.deployment_id, first[-1]["seq"]), account.token
            )
            return first, stalled.close_code, resumed, resumed_code

        first, stalled_code, resumed, resumed_code = asyncio.run(scenario())

    assert first[-1]["type"] == "lagged"
    assert stalled_code == 4408
    assert first[-1]["seq"] == first[-2]["seq"] < COUNT
    assert seqs(first[:-1]) == list(range(1, first[-1]["seq"] + 1))
    assert seqs(resumed) == list(range(first[-1]["seq"] + 1, COUNT + 2))
    assert resumed[-1]["type"] == "result"
    assert resumed_code == 1000


# --- a builder in another process --------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time
    from builder.remote import HttpSink
    from builder.spec import Masker

    url, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sink = HttpSink(url, token, Masker([]))
    for n in range(count):
        sink.emit({"type": "line", "ts": time.time(), "stream": "stdout", "text": f"line {n}"})
        if n == count // 2 - 1:
            sink.close()  # everything so far is with the API; wait to be told to go on
            sys.stdin.readline()
            sink = HttpSink(url, token, Masker([]))
    sink.close()
    """
)


def building(live: Live, account: Account) -> str:
    """The deployment moved to `building`, and the bootstrap token its builder would hold."""

    async def start() -> str:
        moved = await move(
            account.deployment_id, [DeploymentState.QUEUED], DeploymentState.BUILDING
        )
        assert moved
        return await BuildTokens().issue(account.deployment_id, timedelta(minutes=5))

    token: str = live.in_app(start)
    return token


@pytest.mark.redis
def test_lines_from_a_builder_process_reach_a_viewer_live_through_the_api_and_redis(
    settings_for: Callable[..., Settings],
) -> None:
    count = 200
    with serving(settings_for(SCALEMESH_REDIS_URL=redis_url())) as live:
        account = sign_up_and_deploy(live)
        build_token = building(live, account)

        async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
            async with websockets.connect(
                live.ws_url(account.deployment_id), additional_headers=bearer(account.token)
            ) as ws:
                builder = subprocess.Popen(  # noqa: ASYNC220 - started, then awaited in a thread
                    [sys.executable, "-c", WRITER, live.serving.url, build_token, str(count)],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    text=True,
                )
                try:
                    # The builder waits, half done: these lines can only have come live.
                    first_half: list[dict[str, Any]] = []
                    while len(first_half) < count // 2:
                        first_half.extend(json.loads(await asyncio.wait_for(ws.recv(), WAIT_S)))
                    assert builder.poll() is None
                    assert builder.stdin is not None
                    builder.stdin.write("go on\n")
                    builder.stdin.close()
                    assert await asyncio.to_thread(builder.wait, WAIT_S) == 0
                finally:
                    if builder.poll() is None:
                        builder.kill()
                await asyncio.to_thread(cancel, live, account)
                rest: list[dict[str, Any]] = []
                with contextlib.suppress(websockets.ConnectionClosedOK):
                    while True:
                        rest.extend(json.loads(await asyncio.wait_for(ws.recv(), WAIT_S)))
            assert ws.close_code is not None
            return first_half, rest, ws.close_code

        first_half, rest, code = asyncio.run(scenario())

    events = first_half + rest
    assert seqs(events) == list(range(1, count + 2))
    assert [event["text"] for event in events[:-1]] == [f"line {n}" for n in range(count)]
    assert events[-1]["type"] == "result"
    assert code == 1000
