"""What the builder prints, as the local runner reads it: odd bytes, long lines, escapees."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from app.runners.api import RunStatus
from app.runners.local import LocalRunner
from app.runners.local_output import lines
from builder.spec import MAX_TEXT
from tests.support.runners import (
    FAKE_BUILDER,
    FAKE_SANDBOX,
    FakeBus,
    finished,
    make_spec,
    pids,
)
from tests.support.waiting import WAIT_S, eventually

pytestmark = pytest.mark.anyio


async def test_odd_output_is_split_and_decoded(
    local: LocalRunner, bus: FakeBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.runners.local_output.MAX_LINE", 10_000)
    handle = await local.start(make_spec(FAKE_MODE="bytes"))

    assert (await finished(local, handle)).status is RunStatus.SUCCEEDED
    texts = bus.texts("dep-1", "system")
    assert all(0 < len(text) <= MAX_TEXT for text in texts)
    assert "".join(text for text in texts if text[0] == "x") == "x" * 20_000
    assert "".join(text for text in texts if text[0] == "y") == "y" * 25_000
    assert texts[-2:] == ["café \ufffd", "no newline at the end"]


async def test_long_lines_are_cut_without_inventing_empty_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("app.runners.local_output.MAX_LINE", 4)
    stream = asyncio.StreamReader()
    stream.feed_data(b"abcd\nabcdef\n\nabc")
    stream.feed_eof()

    # "abcd" is cut before its newline is seen; "abcdef" arrives whole (at most 2 * MAX_LINE
    # is ever buffered); the empty line is real.
    assert [line async for line in lines(stream)] == ["abcd", "abcdef", "", "abc"]


async def test_a_failing_bus_does_not_stall_the_build(
    work_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = LocalRunner(
        FakeBus(fail=True),
        {},
        work_root,
        command=[sys.executable, str(FAKE_BUILDER)],
        sandbox=FAKE_SANDBOX,
    )
    handle = await runner.start(make_spec())

    assert (await finished(runner, handle)).status is RunStatus.SUCCEEDED
    lost = [r for r in caplog.records if r.getMessage() == "build log line lost"]
    assert len(lost) == 2  # once per stream, not once per line
    assert lost[0].__dict__["deployment_id"] == "dep-1"
    await runner.aclose()


async def escaped_build(bus: FakeBus, work_root: Path, pidfile: Path) -> tuple[LocalRunner, int]:
    """A finished build whose child left its process group and still holds the output open;
    the runner (its drain time 0.2 s) and the child's pid."""
    runner = LocalRunner(
        bus,
        {},
        work_root,
        command=[sys.executable, str(FAKE_BUILDER)],
        sandbox=FAKE_SANDBOX,
        drain_timeout=0.2,
    )
    handle = await runner.start(make_spec(FAKE_MODE="escape", FAKE_PIDFILE=str(pidfile)))
    assert (await finished(runner, handle)).status is RunStatus.SUCCEEDED
    (escaped,) = pids(pidfile)
    return runner, escaped


async def test_an_escaped_child_cannot_hold_the_build_open(
    bus: FakeBus, work_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner, escaped = await escaped_build(bus, work_root, tmp_path / "pids")

    assert "build left processes holding its output open" in caplog.messages
    try:
        (tmp_path / "pids.go").touch()  # the escaped child prints a line now
        await eventually(lambda: (tmp_path / "pids.printed").exists())
    finally:
        os.kill(escaped, signal.SIGKILL)
    # Its death closes the output: the runner reads it to the end, dropping what it reads.
    await eventually(lambda: not runner._stragglers)
    assert "late" not in bus.texts("dep-1", "system")
    assert bus.events.get("dep-1", []) == []  # the builder itself printed nothing
    await runner.aclose()


async def test_closing_waits_for_the_output_an_escaped_child_held(
    bus: FakeBus, work_root: Path, tmp_path: Path
) -> None:
    runner, escaped = await escaped_build(bus, work_root, tmp_path / "pids")
    assert runner._stragglers, "the escaped child still holds the build's output open"
    runner._drain_timeout = WAIT_S  # the output ends as the child dies: closing waits for that

    os.kill(escaped, signal.SIGKILL)  # its output closes as it dies...
    await runner.aclose()  # ...and closing reads it to the end rather than dropping it

    assert not runner._stragglers
