"""The log websocket: who may follow a log, replay then live then close, heartbeats, lagging.

Most tests drive the app in-process with Litestar's test client, on the memory bus and on Redis
streams (written by the builder's own Redis sink). The tests of behaviour that only a real
network shows (a client that stops reading, a builder in another process, the close codes a
real client sees) run the app under uvicorn on a loopback port and read with `websockets`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from litestar import Litestar
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import WebSocketTestSession

from app import logstream
from app.asgi import create_app
from app.logs import LogBusError, LogEvent, MemoryLogBus, archive_key
from app.settings import Settings
from builder.logsink import RedisSink
from builder.spec import Masker, log_stream
from tests.support.api import PASSWORD, Client, OfflineResolver, bearer, sign_up
from tests.support.services import redis_url

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 10.0
UNKNOWN_ID = "0b7f4bd6-44a1-4d6e-9a53-f1a1a0c3b8f2"


def line(text: str, ts: float = 1_700_000_000.0) -> LogEvent:
    return {"type": "line", "ts": ts, "stream": "stdout", "text": text, "step": "build"}


# --- in-process: fixtures and helpers ---------------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def bus_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def client(
    make_settings: Callable[..., Settings], database_url: str, bus_kind: str
) -> Iterator[Client]:
    overrides = {"SCALEMESH_DATABASE_URL": database_url}
    if bus_kind == "redis":
        overrides["SCALEMESH_REDIS_URL"] = redis_url()
    app = create_app(make_settings(**overrides), ref_resolver=OfflineResolver(), reconcile=False)
    with Client(app) as test_client:
        yield test_client


@pytest.fixture
def token(client: Client) -> str:
    token = sign_up(client)
    response = client.post(
        "/project", json={"name": "web", "repo": "octo/web"}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    return token


@pytest.fixture
def deployment_id(client: Client, token: str) -> Iterator[str]:
    response = client.post("/deploy", json={"project": "web"}, headers=bearer(token))
    assert response.status_code == 202, response.text
    made: str = response.json()["id"]
    yield made
    client.run(lambda: client.app.state.services.bus.forget(made))


def append(client: Client, bus_kind: str, deployment_id: str, *events: LogEvent) -> None:
    """Write events as the builder would: to the memory bus, or with its Redis sink."""
    if bus_kind == "memory":
        bus = client.app.state.services.bus

        async def write() -> None:
            for event in events:
                await bus.append(deployment_id, event)

        client.run(write)
        return
    sink = RedisSink(redis_url(), log_stream(deployment_id), Masker([]))
    for event in events:
        sink.emit(event)
    sink.close()


def finish(client: Client, token: str, deployment_id: str) -> None:
    """End the deployment the way the API does: the result is logged, the log archived."""
    response = client.post(f"/deployments/{deployment_id}/cancel", headers=bearer(token))
    assert response.status_code == 200, response.text


def connect(
    client: Client, deployment_id: str, token: str | None = None, query: str = ""
) -> WebSocketTestSession:
    headers = bearer(token) if token else {}
    return client.websocket_connect(f"/deployments/{deployment_id}/logs/ws{query}", headers=headers)


def frame(session: WebSocketTestSession) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(session.receive_text(timeout=WAIT_S))
    assert isinstance(events, list)
    assert events
    return events


def receive_until(session: WebSocketTestSession, count: int) -> list[dict[str, Any]]:
    """Frames until `count` events have come."""
    events: list[dict[str, Any]] = []
    while len(events) < count:
        events.extend(frame(session))
    return events


def read_to_close(session: WebSocketTestSession) -> tuple[list[dict[str, Any]], int]:
    """Every event until the server closes; the close code."""
    events: list[dict[str, Any]] = []
    while True:
        try:
            events.extend(frame(session))
        except WebSocketDisconnect as closed:
            return events, closed.code


def refusal(client: Client, deployment_id: str, **kwargs: Any) -> tuple[int, str]:
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        connect(client, deployment_id, **kwargs) as ws,
    ):
        ws.receive_text(timeout=WAIT_S)
    return closed.value.code, str(closed.value.detail)


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [event["seq"] for event in events]


# --- replay, live, result -----------------------------------------------------------------------


def test_a_late_viewer_gets_the_log_so_far_then_live_lines_then_the_result(
    client: Client, bus_kind: str, token: str, deployment_id: str
) -> None:
    append(client, bus_kind, deployment_id, *[line(f"early {n}") for n in range(3)])

    with connect(client, deployment_id, token) as ws:
        replay = receive_until(ws, 3)
        append(client, bus_kind, deployment_id, line("live 1"), line("live 2"))
        live = receive_until(ws, 2)
        finish(client, token, deployment_id)
        rest, code = read_to_close(ws)

    assert [event["text"] for event in replay] == ["early 0", "early 1", "early 2"]
    assert [event["text"] for event in live] == ["live 1", "live 2"]
    assert [event["type"] for event in rest] == ["result"]
    assert rest[0]["state"] == "cancelled"
    assert seqs(replay + live + rest) == [1, 2, 3, 4, 5, 6]
    assert code == 1000


def test_a_reconnect_with_since_gets_only_what_came_after(
    client: Client, bus_kind: str, token: str, deployment_id: str
) -> None:
    append(client, bus_kind, deployment_id, *[line(f"line {n}") for n in range(1, 6)])

    with connect(client, deployment_id, token, "?since=3") as ws:
        first = frame(ws)
        finish(client, token, deployment_id)
        rest, code = read_to_close(ws)

    assert [event["text"] for event in first] == ["line 4", "line 5"]
    assert seqs(first + rest) == [4, 5, 6]
    assert code == 1000


def test_a_finished_deployment_is_replayed_from_its_archive(
    client: Client, bus_kind: str, token: str, deployment_id: str
) -> None:
    append(client, bus_kind, deployment_id, line("built"), line("uploaded"))
    finish(client, token, deployment_id)
    storage = client.app.state.services.reconciler.storage
    assert client.run(lambda: storage.exists(archive_key(deployment_id)))
    assert client.run(lambda: client.app.state.services.bus.read(deployment_id)) == []

    with connect(client, deployment_id, token) as ws:
        events, code = read_to_close(ws)
    with connect(client, deployment_id, token, "?since=2") as ws:
        after_two, _ = read_to_close(ws)
    with connect(client, deployment_id, token, "?since=3") as ws:
        nothing_left, code_when_done = read_to_close(ws)

    assert [event["type"] for event in events] == ["line", "line", "result"]
    assert seqs(events) == [1, 2, 3]
    assert code == 1000
    assert seqs(after_two) == [3]
    assert nothing_left == []
    assert code_when_done == 1000


def test_many_waiting_events_share_a_frame_and_frames_stay_small(
    client: Client, token: str, deployment_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(client, "memory", deployment_id, *[line(f"{n:04}" + "x" * 100) for n in range(500)])
    finish(client, token, deployment_id)
    monkeypatch.setattr(logstream, "FRAME_BYTES", 4096)

    frames: list[list[dict[str, Any]]] = []
    with connect(client, deployment_id, token) as ws, contextlib.suppress(WebSocketDisconnect):
        while True:
            frames.append(frame(ws))

    sizes = [len(json.dumps(events, separators=(",", ":"))) for events in frames]
    assert seqs([event for events in frames for event in events]) == list(range(1, 502))
    assert 1 < len(frames) < 501
    assert max(sizes) < 4096 + 300


# --- who may follow a log -----------------------------------------------------------------------


def test_the_session_cookie_works_as_well_as_a_bearer_token(
    client: Client, token: str, deployment_id: str
) -> None:
    finish(client, token, deployment_id)
    url = f"/deployments/{deployment_id}/logs/ws"

    with client.websocket_connect(url, headers={"Cookie": f"scalemesh_session={token}"}) as ws:
        by_cookie, cookie_code = read_to_close(ws)
    with client.websocket_connect(url, headers=bearer(token)) as ws:
        by_bearer, bearer_code = read_to_close(ws)

    assert by_cookie == by_bearer
    assert [event["type"] for event in by_cookie] == ["result"]
    assert cookie_code == bearer_code == 1000


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://testserver.local", True),  # the dashboard, on the host the socket is opened on
        ("http://localhost:8000", True),  # SCALEMESH_PUBLIC_URL
        ("http://web-1234.localhost:8080", False),  # a deployed site, same-site but not ours
        ("https://evil.example", False),
    ],
)
def test_the_cookie_counts_only_from_pages_of_this_site(
    client: Client, token: str, deployment_id: str, origin: str, allowed: bool
) -> None:
    finish(client, token, deployment_id)
    url = f"/deployments/{deployment_id}/logs/ws"
    cookie = {"Cookie": f"scalemesh_session={token}", "Origin": origin}

    if allowed:
        with client.websocket_connect(url, headers=cookie) as ws:
            assert read_to_close(ws)[1] == 1000
    else:
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect(url, headers=cookie) as ws,
        ):
            ws.receive_text(timeout=WAIT_S)
        assert refused.value.code == 4401
    # A bearer token is no ambient credential: any page holding one may use it.
    with client.websocket_connect(url, headers={**bearer(token), "Origin": origin}) as ws:
        assert read_to_close(ws)[1] == 1000


def test_nobody_signed_in_is_refused(client: Client, token: str, deployment_id: str) -> None:
    assert refusal(client, deployment_id)[0] == 4401
    assert refusal(client, deployment_id, token="not-a-session")[0] == 4401
    # Without credentials, whether the deployment exists is not told either.
    assert refusal(client, UNKNOWN_ID)[0] == 4401


def test_someone_elses_deployment_is_forbidden(
    client: Client, token: str, deployment_id: str
) -> None:
    other = sign_up(client, "grace@example.com")

    code, reason = refusal(client, deployment_id, token=other)

    assert code == 4403
    assert "another account" in reason


@pytest.mark.parametrize("unknown", [UNKNOWN_ID, "not-a-uuid", "0b7f4bd6"])
def test_an_unknown_deployment_is_not_found(client: Client, token: str, unknown: str) -> None:
    assert refusal(client, unknown, token=token)[0] == 4404


@pytest.mark.parametrize("since", ["-1", "abc", "", "1.5", "٣", "9" * 19])
def test_a_bad_since_is_refused(client: Client, token: str, deployment_id: str, since: str) -> None:
    code, reason = refusal(client, deployment_id, token=token, query=f"?since={since}")

    assert code == 4400
    assert "since" in reason


def test_a_deployment_id_in_another_spelling_is_the_same_deployment(
    client: Client, bus_kind: str, token: str, deployment_id: str
) -> None:
    append(client, bus_kind, deployment_id, line("hello"))
    finish(client, token, deployment_id)

    with connect(client, deployment_id.upper().replace("-", ""), token) as ws:
        events, _ = read_to_close(ws)

    assert [event["type"] for event in events] == ["line", "result"]


# --- idle connections, leaving, failures --------------------------------------------------------


def test_an_idle_log_sends_heartbeats_and_live_lines_still_arrive(
    client: Client, bus_kind: str, token: str, deployment_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logstream, "HEARTBEAT_S", 0.05)

    with connect(client, deployment_id, token) as ws:
        started = time.time()
        beats = [frame(ws), frame(ws)]
        append(client, bus_kind, deployment_id, line("at last"))
        events = receive_until_line(ws)

    for beat in beats:
        assert len(beat) == 1
        assert beat[0]["type"] == "heartbeat"
        assert "seq" not in beat[0]
        assert started - 1 <= beat[0]["ts"] <= time.time() + 1
    assert events[-1]["text"] == "at last"


def receive_until_line(session: WebSocketTestSession) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] != "line":
        events.extend(event for event in frame(session) if event["type"] != "heartbeat")
    return events


class CountingBus(MemoryLogBus):
    """A memory bus that knows how many tails are open."""

    def __init__(self) -> None:
        super().__init__()
        self.open_tails = 0

    async def tail(
        self, deployment_id: str, since: int = 0, *, heartbeat: float = 15.0
    ) -> AsyncGenerator[LogEvent | None, None]:
        self.open_tails += 1
        try:
            async with contextlib.aclosing(
                super().tail(deployment_id, since, heartbeat=heartbeat)
            ) as tail:
                async for event in tail:
                    yield event
        finally:
            self.open_tails -= 1


def test_a_viewer_that_leaves_lets_go_of_the_log_and_may_talk_meanwhile(
    client: Client, token: str, deployment_id: str
) -> None:
    bus = CountingBus()
    client.app.state.services.bus = bus
    client.run(lambda: bus.append(deployment_id, line("one")))

    with connect(client, deployment_id, token) as ws:
        first = frame(ws)
        ws.send_text("hello?")  # the protocol has clients say nothing; this is dropped
        assert bus.open_tails == 1
    deadline = time.monotonic() + WAIT_S
    while bus.open_tails and time.monotonic() < deadline:
        time.sleep(0.01)

    assert [event["text"] for event in first] == ["one"]
    assert bus.open_tails == 0


class BrokenBus(MemoryLogBus):
    async def tail(
        self, deployment_id: str, since: int = 0, *, heartbeat: float = 15.0
    ) -> AsyncGenerator[LogEvent | None, None]:
        yield {"type": "line", "seq": since + 1, "text": "before the fall"}
        raise LogBusError("log tail: ConnectionError: gone")


def test_a_log_bus_failure_closes_with_1011_after_what_was_read(
    client: Client, token: str, deployment_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    client.app.state.services.bus = BrokenBus()

    with connect(client, deployment_id, token, "?since=4") as ws:
        events, code = read_to_close(ws)

    assert events == [{"type": "line", "seq": 5, "text": "before the fall"}]
    assert code == 1011
    failure = next(r for r in caplog.records if r.getMessage() == "log stream failed")
    assert failure.deployment_id == deployment_id  # type: ignore[attr-defined]


# --- a real server: uvicorn on loopback, `websockets` clients -----------------------------------


@dataclass
class Live:
    app: Litestar
    loop: asyncio.AbstractEventLoop
    port: int

    def ws_url(self, deployment_id: str, since: int | None = None) -> str:
        query = "" if since is None else f"?since={since}"
        return f"ws://127.0.0.1:{self.port}/deployments/{deployment_id}/logs/ws{query}"

    def http(self) -> httpx.Client:
        # trust_env=False: a proxy set in the environment must not capture loopback requests.
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", timeout=WAIT_S, trust_env=False
        )

    def in_app(self, make: Callable[[], Any]) -> Any:
        """Run a coroutine on the server's own event loop (the memory bus lives there)."""
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(WAIT_S)


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[Live]:
    app = create_app(settings, ref_resolver=OfflineResolver(), reconcile=False)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve(sockets=[listener]),), daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            assert time.monotonic() < deadline, "uvicorn did not start in time"
            time.sleep(0.01)
        yield Live(app, loop, listener.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        loop.close()
        listener.close()


@dataclass
class Account:
    token: str
    deployment_id: str


def sign_up_and_deploy(live: Live) -> Account:
    with live.http() as http:
        assert (
            http.post(
                "/user/signup", json={"email": "ada@example.com", "password": PASSWORD}
            ).status_code
            == 201
        )
        token = http.post(
            "/user/login", json={"email": "ada@example.com", "password": PASSWORD}
        ).json()["token"]
        assert (
            http.post(
                "/project", json={"name": "web", "repo": "octo/web"}, headers=bearer(token)
            ).status_code
            == 201
        )
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


def test_a_stalled_viewer_is_lagged_resumes_losing_nothing_and_holds_up_no_one(
    settings_for: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logstream, "OUTBOX_EVENTS", 20)
    monkeypatch.setattr(logstream, "LAG_S", 1.0)
    count = 2500  # 8 KB each: far more than the socket buffers between server and client hold
    with serving(settings_for()) as live:
        account = sign_up_and_deploy(live)
        bus = live.app.state.services.bus

        async def scenario() -> dict[str, Any]:
            stalled_socket = socket.socket()
            stalled_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            stalled_socket.connect(("127.0.0.1", live.port))
            stalled = await websockets.connect(
                live.ws_url(account.deployment_id),
                sock=stalled_socket,
                additional_headers=bearer(account.token),
                max_queue=1,
                compression=None,  # else the repeated text shrinks to nothing on the wire
            )
            fast = asyncio.create_task(read_all(live.ws_url(account.deployment_id), account.token))

            async def write() -> float:
                started = time.monotonic()
                for n in range(count):
                    await bus.append(account.deployment_id, line(f"{n:05} " + "x" * 8000))
                return time.monotonic() - started

            writing_s = await asyncio.to_thread(live.in_app, write)
            await asyncio.to_thread(cancel, live, account)
            fast_events, fast_code = await asyncio.wait_for(fast, WAIT_S * 3)
            await asyncio.sleep(2.5)  # the stalled client's full outbox waits past LAG_S
            # Only now does the stalled client read: what it was sent, then `lagged`, then 4408.
            first: list[dict[str, Any]] = []
            with contextlib.suppress(websockets.ConnectionClosedError):
                while True:
                    first.extend(json.loads(await asyncio.wait_for(stalled.recv(), WAIT_S)))
            resumed, resumed_code = await read_all(
                live.ws_url(account.deployment_id, first[-1]["seq"]), account.token
            )
            return {
                "writing_s": writing_s,
                "fast": fast_events,
                "fast_code": fast_code,
                "first": first,
                "stalled_code": stalled.close_code,
                "resumed": resumed,
                "resumed_code": resumed_code,
            }

        outcome = asyncio.run(scenario())

    everything = list(range(1, count + 2))
    assert seqs(outcome["fast"]) == everything
    assert outcome["fast_code"] == 1000
    first = outcome["first"]
    assert first[-1]["type"] == "lagged"
    assert outcome["stalled_code"] == 4408
    assert first[-1]["seq"] == first[-2]["seq"] < count
    assert seqs(first[:-1]) == list(range(1, first[-1]["seq"] + 1))
    assert seqs(outcome["resumed"]) == list(range(first[-1]["seq"] + 1, count + 2))
    assert outcome["resumed"][-1]["type"] == "result"
    assert outcome["resumed_code"] == 1000
    assert outcome["writing_s"] < 5  # the builder was not held up by the stalled viewer


WRITER = textwrap.dedent(
    """
    import sys, time
    from builder.logsink import RedisSink
    from builder.spec import Masker, log_stream

    url, deployment_id, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sink = RedisSink(url, log_stream(deployment_id), Masker([]))
    for n in range(count):
        sink.emit({"type": "line", "ts": time.time(), "stream": "stdout", "text": f"line {n}"})
        if n == count // 2 - 1:
            sink.close()  # everything so far is in Redis; wait to be told to go on
            sys.stdin.readline()
            sink = RedisSink(url, log_stream(deployment_id), Masker([]))
    sink.close()
    """
)


@pytest.mark.redis
def test_lines_from_a_builder_process_reach_a_viewer_live_through_redis(
    settings_for: Callable[..., Settings],
) -> None:
    count = 200
    with serving(settings_for(SCALEMESH_REDIS_URL=redis_url())) as live:
        account = sign_up_and_deploy(live)

        async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
            async with websockets.connect(
                live.ws_url(account.deployment_id), additional_headers=bearer(account.token)
            ) as ws:
                builder = subprocess.Popen(  # noqa: ASYNC220 - started, then awaited in a thread
                    [sys.executable, "-c", WRITER, redis_url(), account.deployment_id, str(count)],
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
