"""Log sinks deliver every event in order, with secrets masked before anything leaves."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import cast

import pytest
import redis

from builder.logsink import (
    MAX_TEXT,
    LogSinkError,
    Masker,
    RedisSink,
    StdoutSink,
    basic_auth,
    open_sink,
)
from builder.spec import BuildSpec, SpecError
from tests.support.builder import parse_events
from tests.support.services import redis_url
from tests.support.waiting import wait_until

SHA = "ab" * 20
TOKEN = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"


def spec(**overrides: object) -> BuildSpec:
    values: dict[str, object] = {
        "deployment_id": f"dpl-{uuid.uuid4().hex}",
        "project_id": 1,
        "git_url": "https://github.com/o/r",
        "sha": SHA,
        "storage_url": "file:///tmp/s",
        "token": TOKEN,
        "env": {
            "API_KEY": "sk_live_abcdef",
            "SHORT": "no",
            "PEM": "-----BEGIN KEY-----\r\nAAAABBBB\nCCCCDDDD\n-----END KEY-----",
        },
    }
    values.update(overrides)
    return BuildSpec(**values)  # type: ignore[arg-type]


def line(text: str) -> dict[str, object]:
    return {"type": "line", "ts": 1.0, "stream": "stdout", "text": text, "step": "build"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key=sk_live_abcdef!", "key=***!"),
        (f"token {TOKEN}", "token ***"),
        (f"Authorization: Basic {basic_auth(TOKEN)}", "Authorization: Basic ***"),
        ("AAAABBBB and CCCCDDDD", "*** and ***"),  # each line of a multi-line value
        ("-----BEGIN KEY-----", "***"),
        ("no, short values stay", "no, short values stay"),
        ("nothing secret", "nothing secret"),
    ],
)
def test_masker_hides_every_secret(text: str, expected: str) -> None:
    assert Masker.for_spec(spec()).mask(text) == expected


def test_masker_prefers_the_longest_secret() -> None:
    masker = Masker(["abcd", "abcdefgh"])

    assert masker.mask("abcdefgh abcd") == "*** ***"


def test_masker_without_secrets_changes_nothing() -> None:
    assert Masker.for_spec(spec(token="", env={})).mask("anything at all") == "anything at all"


def test_a_short_token_is_still_masked() -> None:
    assert Masker([], always=["xyz"]).mask("a xyz b") == "a *** b"


def test_prepare_masks_the_end_error_and_leaves_other_events_alone() -> None:
    masker = Masker(["hunter22"])
    step = {"type": "step", "ts": 1.0, "step": "build", "status": "start"}

    assert masker.prepare({"type": "end", "ok": False, "error": "bad hunter22"}) == [
        {"type": "end", "ok": False, "error": "bad ***"}
    ]
    assert masker.prepare(step) == [step]


def test_prepare_splits_long_lines_after_masking() -> None:
    secret = "s3cr3t-value"
    # The secret straddles the cut: masking first means no piece holds part of it.
    text = "x" * (MAX_TEXT - 5) + secret + "y" * MAX_TEXT
    pieces = Masker([secret]).prepare(line(text))

    assert [len(piece["text"]) for piece in pieces] == [MAX_TEXT, MAX_TEXT - 2]
    assert "".join(piece["text"] for piece in pieces) == text.replace(secret, "***")
    assert all(piece["step"] == "build" for piece in pieces)
    assert Masker([]).prepare(line("")) == [line("")]


def test_stdout_sink_writes_one_flushed_json_object_per_line() -> None:
    class Stream(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1

    stream = Stream()
    sink = StdoutSink(Masker.for_spec(spec()), stream)

    sink.emit(line(f"secret sk_live_abcdef and {TOKEN}"))
    sink.emit({"type": "end", "ok": True, "ts": 2.0})
    sink.close()

    assert parse_events(stream.getvalue()) == [
        line("secret *** and ***"),
        {"type": "end", "ok": True, "ts": 2.0},
    ]
    assert stream.flushes == 3


def test_stdout_sink_reports_a_closed_pipe() -> None:
    class ClosedPipe(io.StringIO):
        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    sink = StdoutSink(Masker([]), ClosedPipe())

    with pytest.raises(LogSinkError, match="Broken pipe"):
        sink.emit(line("x"))
    with pytest.raises(LogSinkError, match="Broken pipe"):
        sink.close()


def test_open_sink_picks_by_the_spec() -> None:
    assert isinstance(open_sink(spec(), Masker([]), io.StringIO()), StdoutSink)
    with pytest.raises(SpecError, match="not 'kafka'"):
        open_sink(spec(log_sink="kafka://broker"), Masker([]), io.StringIO())


def test_an_unreachable_redis_fails_at_once() -> None:
    with pytest.raises(LogSinkError, match="cannot reach"):
        open_sink(spec(log_sink="redis://127.0.0.1:1/0"), Masker([]), io.StringIO())


# --- Redis ------------------------------------------------------------------------------------


@pytest.fixture
def stream_spec() -> Iterator[BuildSpec]:
    url = redis_url()
    build = spec(log_sink=url)
    yield build
    client = redis.Redis.from_url(url)
    client.delete(build.log_stream)
    client.close()


def read_stream(build: BuildSpec) -> list[tuple[str, dict[str, object]]]:
    client = redis.Redis.from_url(build.log_sink, decode_responses=True)
    try:
        entries = cast(list[tuple[str, dict[str, str]]], client.xrange(build.log_stream))
    finally:
        client.close()
    return [(entry_id, json.loads(fields["e"])) for entry_id, fields in entries]


@pytest.mark.redis
def test_redis_sink_numbers_entries_by_seq_and_masks(stream_spec: BuildSpec) -> None:
    sink = open_sink(stream_spec, Masker.for_spec(stream_spec), io.StringIO())
    count = 20_000

    for index in range(count):
        sink.emit(line(f"line {index} sk_live_abcdef"))
    sink.emit({"type": "end", "ok": True, "ts": 3.0})
    sink.close()

    entries = read_stream(stream_spec)
    assert [entry_id for entry_id, _ in entries] == [f"0-{seq}" for seq in range(1, count + 2)]
    assert entries[0][1] == line("line 0 ***")
    assert entries[count - 1][1] == line(f"line {count - 1} ***")
    assert entries[-1][1] == {"type": "end", "ok": True, "ts": 3.0}
    assert all("seq" not in event for _, event in entries)


@pytest.mark.redis
def test_redis_sink_flushes_a_lone_event_without_waiting_for_close(
    stream_spec: BuildSpec,
) -> None:
    sink = RedisSink(stream_spec.log_sink, stream_spec.log_stream, Masker([]), flush_interval=0.01)
    try:
        sink.emit(line("hello"))
        # Not closed: only the sink's own flush timer can have written it.
        stored = wait_until(lambda: read_stream(stream_spec), what="the lone event flushed")
        assert stored == [("0-1", line("hello"))]
    finally:
        sink.close()


@pytest.mark.redis
def test_redis_sink_holds_the_build_back_when_redis_lags(stream_spec: BuildSpec) -> None:
    sink = RedisSink(
        stream_spec.log_sink, stream_spec.log_stream, Masker([]), batch_size=5, max_pending=5
    )
    for index in range(50):
        sink.emit(line(str(index)))
    sink.close()

    assert [event["text"] for _, event in read_stream(stream_spec)] == [str(i) for i in range(50)]


@pytest.mark.redis
def test_redis_sink_reports_a_refused_write(stream_spec: BuildSpec) -> None:
    client = redis.Redis.from_url(stream_spec.log_sink)
    client.set(stream_spec.log_stream, "not a stream")
    client.close()
    sink = RedisSink(stream_spec.log_sink, stream_spec.log_stream, Masker([]), batch_size=1)

    def emit_until_refused() -> None:
        for _ in range(1000):  # the failure surfaces on a later emit, or at the latest on close
            sink.emit(line("x"))
        sink.close()

    with pytest.raises(LogSinkError, match="WRONGTYPE"):
        emit_until_refused()
    with pytest.raises(LogSinkError, match="writing to the log stream failed"):
        sink.close()
