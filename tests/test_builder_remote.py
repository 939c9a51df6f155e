"""The builder's HTTP client against the real API on a socket: the spec once, the log in batches,
masked, stopped by the API's refusals; and against a scripted server, the failures in between."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest

from app.settings import Settings
from builder.logsink import LogSinkError
from builder.remote import (
    API_URL_VARIABLE,
    TOKEN_VARIABLE,
    HttpSink,
    RemoteError,
    build_url,
    fetch_spec,
    open_remote,
)
from builder.spec import BuildLimits, Masker, SpecError
from tests.support.builds import SECRET_VALUE
from tests.support.ports import refused_port
from tests.support.served_builds import ServedBuilds, served_builds
from tests.support.stub_http import scripted
from tests.support.waiting import wait_until

TOKEN = "7f1b2c3d-0000-4000-8000-000000000001.secret_part"
NO_SLEEP: list[float] = []


def no_sleep(delay: float) -> None:
    NO_SLEEP.append(delay)


@pytest.fixture
def api(settings: Settings) -> Iterator[ServedBuilds]:
    with served_builds(settings) as served:
        yield served


def line(text: str, stream: str = "stdout") -> dict[str, object]:
    return {"type": "line", "ts": 1.0, "stream": stream, "text": text, "step": "build"}


def texts(api: ServedBuilds, deployment_id: str) -> list[str]:
    return [str(e["text"]) for e in api.log(deployment_id) if e["type"] == "line"][1:]


def test_the_spec_is_fetched_once(api: ServedBuilds) -> None:
    deployment_id, token = api.building()

    spec = fetch_spec(api.url + "/", token)

    assert spec == api.runner.spec_of(deployment_id)
    assert spec.env == {"API_KEY": SECRET_VALUE}
    with pytest.raises(RemoteError) as caught:
        fetch_spec(api.url, token)
    assert str(caught.value).startswith("the API refused the build spec (409): This build's")


def test_the_sink_delivers_every_event_in_order_masked(api: ServedBuilds) -> None:
    deployment_id, token = api.building()
    spec = fetch_spec(api.url, token)
    sink = HttpSink(api.url, token, Masker.for_spec(spec, bootstrap=token), batch_size=50)

    for index in range(500):
        sink.emit(line(f"{index} key={SECRET_VALUE}"))
    sink.emit(line(f"token {token} and a NUL \x00 byte", "stderr"))
    sink.emit({"type": "end", "ts": 2.0, "ok": False, "error": f"failed with {SECRET_VALUE}"})
    sink.close()

    events = api.log(deployment_id)
    assert texts(api, deployment_id) == [
        *(f"{index} key=***" for index in range(500)),
        "token *** and a NUL \ufffd byte",
    ]
    assert events[-1] == {
        "type": "end",
        "ts": 2.0,
        "ok": False,
        "error": "failed with ***",
        "seq": len(events),
    }
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


def test_the_sink_flushes_a_lone_event_without_waiting_for_close(api: ServedBuilds) -> None:
    deployment_id, token = api.building()
    sink = HttpSink(api.url, token, Masker(()), flush_interval=0.01)
    try:
        sink.emit(line("hello"))
        # Not closed: only the sink's own timer can have sent it.
        wait_until(lambda: texts(api, deployment_id) == ["hello"], what="the lone event sent")
    finally:
        sink.close()


def test_the_log_limit_fails_the_build_in_the_apis_words(settings: Settings) -> None:
    tight = dataclasses.replace(settings, build_limits=BuildLimits(max_log_mb=1))
    with served_builds(tight) as api:
        deployment_id, token = api.building()
        sink = HttpSink(api.url, token, Masker(()))

        def flood() -> None:
            for _ in range(400):  # 3 MB, more than the limit, whenever the refusal arrives
                sink.emit(line("x" * 8000))
            sink.close()

        with pytest.raises(LogSinkError) as caught:
            flood()
        assert str(caught.value) == "the build log passed 1 MB"
        assert "the build log passed 1 MB" in texts(api, deployment_id)


def test_a_dead_token_stops_the_sink(api: ServedBuilds) -> None:
    deployment_id, token = api.building()
    api.revoke(deployment_id)
    sink = HttpSink(api.url, token, Masker(()))

    sink.emit(line("too late"))
    with pytest.raises(LogSinkError) as caught:
        sink.close()
    assert str(caught.value).startswith("the API refused the build log (401): The build token")
    with pytest.raises(LogSinkError):
        sink.emit(line("still too late"))


def test_open_remote_fetches_the_spec_and_opens_a_masking_sink(api: ServedBuilds) -> None:
    deployment_id, token = api.building()

    spec, sink = open_remote({API_URL_VARIABLE: api.url, TOKEN_VARIABLE: token})
    sink.emit(line(f"{SECRET_VALUE} {token}"))
    sink.close()

    assert spec.deployment_id == deployment_id
    assert texts(api, deployment_id) == ["*** ***"]


def test_open_remote_says_why_it_could_not_start(api: ServedBuilds) -> None:
    deployment_id, token = api.building()
    fetch_spec(api.url, token)  # someone else got there first

    with pytest.raises(RemoteError, match="fetched already"):
        open_remote({API_URL_VARIABLE: api.url, TOKEN_VARIABLE: token}, sleep=no_sleep)

    end = api.log(deployment_id)[-1]
    assert end["type"] == "end"
    assert end["ok"] is False
    assert str(end["error"]).startswith("the API refused the build spec (409)")


def test_open_remote_needs_both_variables() -> None:
    with pytest.raises(SpecError, match=f"{API_URL_VARIABLE} and {TOKEN_VARIABLE}"):
        open_remote({TOKEN_VARIABLE: TOKEN})
    with refused_port() as port:
        # Unreachable: nowhere to report it either; the error is raised all the same.
        with pytest.raises(RemoteError, match="could not be reached"):
            open_remote(
                {API_URL_VARIABLE: f"http://127.0.0.1:{port}", TOKEN_VARIABLE: TOKEN},
                sleep=no_sleep,
            )
        with pytest.raises(SpecError, match="not a build token"):
            open_remote({API_URL_VARIABLE: f"http://127.0.0.1:{port}", TOKEN_VARIABLE: "x"})


@pytest.mark.parametrize(
    ("url", "token", "problem"),
    [
        ("https://api.example.com", "no-dot", "not a build token"),
        ("https://api.example.com", ".secret", "not a build token"),
        ("https://api.example.com", "dep.", "not a build token"),
        ("https://api.example.com", "dep.sec ret", "not a build token"),
        ("ftp://api.example.com", TOKEN, "http(s) URL"),
        ("https://", TOKEN, "http(s) URL"),
    ],
)
def test_bad_variables_are_spec_errors(url: str, token: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        build_url(url, token, "spec")
    assert problem in str(caught.value)
    assert token not in str(caught.value) or not token


def test_the_urls_follow_from_the_token() -> None:
    assert build_url("https://api.example.com/base/", TOKEN, "events") == (
        "https://api.example.com/base/internal/builds/7f1b2c3d-0000-4000-8000-000000000001/events"
    )


# --- failures in between, from a scripted server ------------------------------------------------

SPEC = {
    "deployment_id": "7f1b2c3d-0000-4000-8000-000000000001",
    "project_id": 7,
    "git_url": "https://github.com/octo/site.git",
    "sha": "0123456789abcdef0123456789abcdef01234567",
    "storage_url": "s3://bucket",
}


def test_busy_and_restarting_apis_are_tried_again() -> None:
    sleeps: list[float] = []
    answers = [(503, b"down"), (429, b'{"detail": "slow down"}'), (200, json.dumps(SPEC).encode())]
    with scripted(*answers) as server:
        spec = fetch_spec(server.url, TOKEN, sleep=sleeps.append)

    assert spec.project_id == 7
    assert sleeps == [0.5, 1.0]
    first = server.received[0]
    assert first.path == "/internal/builds/7f1b2c3d-0000-4000-8000-000000000001/spec"
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"


def test_an_api_that_stays_down_is_given_up_on() -> None:
    sleeps: list[float] = []
    with (
        scripted((502, b"<html>bad gateway</html>")) as server,
        pytest.raises(RemoteError) as caught,
    ):
        fetch_spec(server.url, TOKEN, attempts=6, sleep=sleeps.append)

    assert str(caught.value) == (
        "the API could not be reached for the build spec: 502: <html>bad gateway</html>"
    )
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]


@pytest.mark.parametrize(
    ("answer", "problem"),
    [(b"not json", "not JSON"), (b'{"project_id": 7}', "deployment_id is not set")],
)
def test_an_answer_that_is_no_spec_is_a_spec_error(answer: bytes, problem: str) -> None:
    with scripted((200, answer)) as server, pytest.raises(SpecError, match=problem):
        fetch_spec(server.url, TOKEN)


def test_a_refusal_without_a_json_body_is_still_explained() -> None:
    refused = r"refused the build spec \(403\): Forbidden by"
    with (
        scripted((403, b"Forbidden by the proxy")) as server,
        pytest.raises(RemoteError, match=refused),
    ):
        fetch_spec(server.url, TOKEN)
    with scripted((404, b"[1]")) as server, pytest.raises(RemoteError, match=r"\(404\): \[1\]"):
        fetch_spec(server.url, TOKEN)


def test_the_sink_retries_and_keeps_each_request_within_its_byte_limit() -> None:
    # HTTP/1.0: the sink opens a connection for each request.
    with scripted((503, b""), (200, b'{"events": 0}'), keep_alive=False) as server:
        sink = HttpSink(server.url, TOKEN, Masker(()), max_batch_bytes=1000, sleep=no_sleep)
        for index in range(20):
            sink.emit(line(f"{index:03d} " + "y" * 100))
        sink.close()

    bodies = [r.body for r in server.received[1:]]  # the first was refused with 503
    assert all(0 < len(body) <= 1000 for body in bodies)
    sent = [json.loads(row)["text"][:3] for body in bodies for row in body.splitlines()]
    assert sent == [f"{index:03d}" for index in range(20)]
    assert server.received[0].headers["Content-Type"] == "application/x-ndjson"


def test_the_sink_holds_the_build_back_while_the_api_lags() -> None:
    with scripted((200, b"{}")) as server:
        sink = HttpSink(server.url, TOKEN, Masker(()), batch_size=5, max_pending=5)
        for index in range(50):
            sink.emit(line(str(index)))
        sink.close()

    sent = [json.loads(row)["text"] for r in server.received for row in r.body.splitlines()]
    assert sent == [str(index) for index in range(50)]


def test_whatever_stops_the_sender_reaches_the_build_without_the_token() -> None:
    def broken(delay: float) -> None:
        raise RuntimeError(f"clock broke while holding {TOKEN}")

    with scripted((503, b"")) as server:
        sink = HttpSink(server.url, TOKEN, Masker(()), sleep=broken)
        sink.emit(line("x"))
        with pytest.raises(LogSinkError) as caught:
            sink.close()

    assert str(caught.value) == "sending the build log failed: clock broke while holding ***"


class FakeTime:
    """A clock that only the sink's waits move forward."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def sleep(self, delay: float) -> None:
        self.waits.append(delay)
        self.now += delay

    def clock(self) -> float:
        return self.now


def test_an_api_that_stays_unreachable_fails_the_sink_after_five_minutes() -> None:
    fake = FakeTime()
    with refused_port() as port:
        sink = HttpSink(
            f"http://127.0.0.1:{port}", TOKEN, Masker(()), sleep=fake.sleep, clock=fake.clock
        )
        sink.emit(line("x"))
        with pytest.raises(LogSinkError, match="could not be reached for the build log"):
            sink.close()

    assert fake.waits[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert set(fake.waits[5:]) == {8.0}
    assert 300 <= fake.now < 300 + 8


def test_the_sink_keeps_a_batch_through_minutes_of_outage() -> None:
    # A Redis restart behind the API answers 503 for a while: the batch is sent again, not
    # dropped, and the build goes on (it used to give up after five tries, about 8 s).
    fake = FakeTime()
    outage = [(503, b'{"detail": "The build log cannot be read right now"}')] * 30
    with scripted(*outage, (200, b'{"events": 1}')) as server:
        sink = HttpSink(server.url, TOKEN, Masker(()), sleep=fake.sleep, clock=fake.clock)
        sink.emit(line("kept"))
        sink.close()

    assert len(server.received) == 31
    assert [json.loads(server.received[-1].body)["text"]] == ["kept"]
    assert 200 < fake.now < 300
