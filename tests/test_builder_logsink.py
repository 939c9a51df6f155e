"""Log sinks deliver every event in order, with secrets masked before anything leaves.

The sink that sends events to the API (`builder.remote.HttpSink`) is in `test_builder_remote.py`.
"""

from __future__ import annotations

import io
import uuid

import pytest

from builder.logsink import MAX_TEXT, LogSinkError, Masker, StdoutSink, basic_auth
from builder.spec import BuildSpec
from tests.support.builder import parse_events

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
