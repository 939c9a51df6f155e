"""Following a build log: the stream's edge cases, against a small fake websocket server.

The fake speaks the API's protocol and shows on demand what a real server cannot be made to
(a dropped connection, `lagged`, a garbled frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from app.client import follow
from app.client.follow import LogPrinter, ws_url
from app.client.reasons import ADVICE
from app.errors import DEPLOYMENT_CODES
from tests.support import cli_client
from tests.support.cli_client import WAIT_S, cli, save
from tests.support.ports import refused_port

# The shared fixtures, bound here: pytest finds a fixture by its name in the test's module.
config = cli_client.config


# --- the log stream's edge cases, against a fake server -------------------------------------------


def line(seq: int, text: str) -> dict[str, Any]:
    return {
        "seq": seq,
        "type": "line",
        "ts": 1_700_000_000.0 + seq,
        "stream": "stdout",
        "text": text,
    }


FAILED = {"seq": 9, "type": "result", "state": "failed", "error": "build failed", "url": None}


@dataclass
class Scene:
    """What the fake server does on one connection: send these frames, then close or drop."""

    frames: list[str]
    close: int | None = 1000
    """None drops the connection without a close frame."""
    reason: str = ""
    then_stop: bool = False
    """Stop listening after this connection: the retries find nobody."""


@dataclass
class FakeStream:
    url: str
    scenes: list[Scene]
    seen: list[tuple[str, str | None]] = field(default_factory=list)
    """(path, Authorization) of each connection."""


@contextlib.contextmanager
def fake_stream(*scenes: Scene) -> Iterator[FakeStream]:
    queue = list(scenes)
    loop = asyncio.new_event_loop()
    fake = FakeStream("", queue)
    servers: list[Any] = []

    async def handle(connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        fake.seen.append((request.path, request.headers.get("Authorization")))
        scene = queue.pop(0)
        for frame in scene.frames:
            await connection.send(frame)
        if scene.close is None:
            assert connection.transport is not None
            connection.transport.abort()
            if scene.then_stop:
                servers[0].close(close_connections=False)
            return
        await connection.close(scene.close, scene.reason)

    async def start() -> Any:
        return await serve(handle, "127.0.0.1", 0)

    server = loop.run_until_complete(start())
    servers.append(server)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        port = next(iter(server.sockets)).getsockname()[1]
        fake.url = f"http://127.0.0.1:{port}"
        yield fake
    finally:

        async def stop() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(WAIT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT_S)
        loop.close()


def frames(*events: dict[str, Any]) -> str:
    return json.dumps(list(events))


@pytest.fixture
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "RECONNECT_DELAYS_S", (0.0, 0.0))


def test_a_dropped_or_lagged_stream_resumes_where_it_stopped(
    config: Path, capsys: pytest.CaptureFixture[str], no_waiting: None
) -> None:
    with fake_stream(
        Scene([frames(line(1, "one"), line(2, "two"))], close=None),
        Scene(
            [
                frames(line(3, "three"), {"type": "heartbeat", "ts": 1.0}),
                frames({"type": "lagged", "seq": 3}),
            ],
            close=4408,
        ),
        Scene([], close=1011, reason="The log is unavailable"),
        Scene([frames(line(4, "four"), {"seq": 5, "type": "newer-kind"}, FAILED)]),
    ) as fake:
        save(config, fake.url, "tok")
        code, out, err = cli(capsys, "logs", "dep-1", "-f")

    assert code == 1
    assert err == "scalemesh: deployment failed: build failed\n"
    texts = [row.split("] ", 1)[1] for row in out.splitlines() if row.startswith("[")]
    assert texts == ["one", "two", "three", "four"]
    assert out.splitlines()[-1] == "── deployment failed: build failed ──"
    assert [path for path, _ in fake.seen] == [
        "/deployments/dep-1/logs/ws?since=0",
        "/deployments/dep-1/logs/ws?since=2",
        "/deployments/dep-1/logs/ws?since=3",
        "/deployments/dep-1/logs/ws?since=3",
    ]
    assert {auth for _, auth in fake.seen} == {"Bearer tok"}


@pytest.mark.parametrize(
    ("scenes", "message"),
    [
        ([Scene([], close=1011)] * 3, "lost the log stream (1011); pick it up again with "),
        ([Scene([frames(line(1, "x"))])], "the log stream ended without a result; see scalemesh "),
        ([Scene([], close=4400, reason="since must be")], "the log stream was refused: since must"),
        ([Scene([], close=4403)], "you have no deployment 'dep-1'"),
        ([Scene(["not json"])], "the log stream sent something other than a list of events"),
        ([Scene(['{"seq": 1}'])], "the log stream sent something other than a list of events"),
        (
            [Scene([frames({"seq": 1, "type": "result", "state": "cancelled", "error": None})])],
            "deployment cancelled: no reason given",
        ),
        (
            [
                Scene(
                    [
                        frames(
                            {
                                "seq": 1,
                                "type": "result",
                                "state": "failed",
                                "error": "the build timed out after 900 s",
                                "error_code": "timeout",
                            }
                        )
                    ]
                )
            ],
            "deployment failed: the build timed out after 900 s (make the build faster, or ask",
        ),
    ],
)
def test_a_stream_that_cannot_go_on_says_why(
    config: Path,
    capsys: pytest.CaptureFixture[str],
    no_waiting: None,
    scenes: list[Scene],
    message: str,
) -> None:
    with fake_stream(*scenes) as fake:
        save(config, fake.url, "tok")
        code, _, err = cli(capsys, "logs", "dep-1", "-f")

    assert code == 1
    assert err.startswith(f"scalemesh: {message}")
    assert len(err.splitlines()) == 1


def test_a_stream_that_is_gone_for_good_is_not_retried(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}"
        save(config, url, "tok")
        code, _, err = cli(capsys, "logs", "dep-1", "-f")

    assert code == 1
    assert err.startswith(f"scalemesh: cannot reach the log stream of {url} (")


def test_a_stream_that_drops_then_stays_away_gives_up(
    config: Path, capsys: pytest.CaptureFixture[str], no_waiting: None
) -> None:
    with fake_stream(Scene([frames(line(1, "one"))], close=None, then_stop=True)) as fake:
        save(config, fake.url, "tok")
        code, out, err = cli(capsys, "logs", "dep-1", "-f")

    assert code == 1
    assert "] one" in out
    assert err.startswith("scalemesh: lost the log stream (")
    assert len(fake.seen) == 1  # then nobody answered the retries


def test_the_live_line_says_what_the_build_is_doing() -> None:
    out = io.StringIO()
    printer = LogPrinter(out, live=True)

    printer.show(line(1, "queued"))
    printer.show({"seq": 2, "type": "step", "step": "install", "status": "start"})
    printer.tick()
    printer.show({"type": "heartbeat", "ts": 1.0})
    printer.show({"seq": 3, "type": "end", "ok": True})
    printer.show(line(4, "done"))
    printer.close()

    assert out.getvalue() == (
        "\r\x1b[K[22:13:21] queued\n| waiting for the build to start  0:00"
        "\r\x1b[K── install ──\n| [3/5] install  0:00"
        "\r\x1b[K/ [3/5] install  0:00"
        "\r\x1b[K[22:13:24] done\n/ publishing  0:00"
        "\r\x1b[K"
    )


def test_https_apis_stream_over_wss() -> None:
    assert ws_url("https://sm.example.com", "d", 7) == (
        "wss://sm.example.com/deployments/d/logs/ws?since=7"
    )


def test_every_way_a_deployment_can_end_comes_with_advice() -> None:
    assert set(ADVICE) == DEPLOYMENT_CODES
