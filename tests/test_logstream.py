"""The log websocket in process: replay then live then close, who may follow a log, heartbeats.

The app runs in Litestar's test client, on the memory bus and on Redis streams (written by the
builder's own Redis sink). What only a real network shows is in `test_logstream_live.py`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect

from app import logstream
from app.asgi import create_app
from app.logs.archive import archive_key
from app.settings import Settings
from tests.support.api import Client, OfflineResolver, bearer, sign_up
from tests.support.logs import line
from tests.support.logstream import (
    UNKNOWN_ID,
    BrokenBus,
    CountingBus,
    FlakyBus,
    append,
    connect,
    finish,
    frame,
    read_to_close,
    receive_until,
    receive_until_line,
    refusal,
    seqs,
)
from tests.support.services import redis_url
from tests.support.waiting import WAIT_S, wait_until


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


def test_an_api_token_follows_as_a_bearer_token_but_not_as_the_cookie(
    client: Client, token: str, deployment_id: str
) -> None:
    finish(client, token, deployment_id)
    api_token = client.post("/tokens", json={"name": "ci"}, headers=bearer(token)).json()["token"]
    url = f"/deployments/{deployment_id}/logs/ws"

    with client.websocket_connect(url, headers=bearer(api_token)) as ws:
        assert read_to_close(ws)[1] == 1000
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(url, headers={"Cookie": f"scalemesh_session={api_token}"}) as ws,
    ):
        ws.receive_text(timeout=WAIT_S)
    assert refused.value.code == 4401


def test_nobody_signed_in_is_refused(client: Client, token: str, deployment_id: str) -> None:
    assert refusal(client, deployment_id)[0] == 4401
    assert refusal(client, deployment_id, token="not-a-session")[0] == 4401
    # Without credentials, whether the deployment exists is not told either.
    assert refusal(client, UNKNOWN_ID)[0] == 4401


def test_someone_elses_deployment_answers_as_a_missing_one(
    client: Client, token: str, deployment_id: str
) -> None:
    other = sign_up(client, "grace@example.com")

    code, reason = refusal(client, deployment_id, token=other)

    assert (code, reason) == refusal(client, UNKNOWN_ID, token=other)
    assert code == 4404


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
    wait_until(lambda: bus.open_tails == 0, what="the tail closing after the viewer left")

    assert [event["text"] for event in first] == ["one"]
    assert bus.open_tails == 0


def test_a_failure_no_retry_mends_closes_with_1011_after_what_was_read(
    client: Client, token: str, deployment_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    client.app.state.services.bus = BrokenBus()

    with connect(client, deployment_id, token, "?since=4") as ws:
        events, code = read_to_close(ws)

    assert events == [{"type": "line", "seq": 5, "text": "before the fall"}]
    assert code == 1011
    failure = next(r for r in caplog.records if r.getMessage() == "log stream failed")
    assert failure.deployment_id == deployment_id  # type: ignore[attr-defined]


def test_a_viewer_rides_out_a_log_bus_that_fails_again_and_again(
    client: Client, token: str, deployment_id: str
) -> None:
    bus = client.app.state.services.bus = FlakyBus(failures=0)
    events = [line("one"), line("two"), {"type": "result", "ts": 1.0, "state": "ready"}]
    client.run(lambda: bus.extend(deployment_id, events))
    bus.failures = 3

    with connect(client, deployment_id, token) as ws:
        received, code = read_to_close(ws)

    assert [event.get("text", event["type"]) for event in received] == ["one", "two", "result"]
    assert bus.failures == 0
    assert code == 1000


def test_a_viewer_gets_the_rest_from_the_archive_when_redis_lost_the_log(
    client: Client, token: str, deployment_id: str
) -> None:
    # Redis came back empty and stays unreadable; another replica archived what it could.
    client.app.state.services.bus = FlakyBus(failures=1_000)
    archived = [
        {"type": "line", "seq": 1, "text": "written after the loss"},
        {"type": "result", "seq": 2, "state": "ready"},
    ]
    body = "".join(json.dumps(event) + "\n" for event in archived).encode()
    storage = client.app.state.services.reconciler.storage

    with connect(client, deployment_id, token, "?since=7") as ws:
        client.run(lambda: storage.put(archive_key(deployment_id), body))
        received, code = read_to_close(ws)
    with connect(client, deployment_id, token, "?since=2") as ws:
        nothing_left, code_when_done = read_to_close(ws)

    # The viewer had seen seqs up to 7, which the archive never reached: it still learns how
    # the build ended.
    assert received == [archived[1]]
    assert code == 1000
    assert nothing_left == []
    assert code_when_done == 1000
