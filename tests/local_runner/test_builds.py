"""The local runner's builds: what reaches the bus and the builder, how they end or are stopped."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import os
import sys
from pathlib import Path

import pytest

from app.runners.api import CANCELLED_REASON, RunnerError, RunState, RunStatus
from app.runners.local import NO_SANDBOX, TOOLCHAINS, UNSAFE_WARNING, WORK_ROOT, LocalRunner
from builder.confinement_choice import SANDBOX
from builder.spec import Masker
from tests.support.runners import (
    FAKE_BUILDER,
    FAKE_SANDBOX,
    TOKEN,
    FakeBus,
    finished,
    leftovers,
    make_spec,
    pids,
)
from tests.support.waiting import alive, eventually

pytestmark = pytest.mark.anyio


def test_secret_values_cover_the_token_as_git_sends_it_and_skip_short_values() -> None:
    spec = make_spec(PEM="-----BEGIN KEY-----\nabcdef\n-----END KEY-----", SHORT="dev")
    secrets = Masker.for_spec(spec).secrets

    assert TOKEN in secrets
    assert base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode() in secrets
    assert {"abcdef", spec.env["PEM"]} <= set(secrets)
    assert "dev" not in secrets
    assert secrets[0] == spec.env["PEM"]  # longest first
    assert Masker.for_spec(dataclasses.replace(spec, token="", env={})).secrets == ()


async def test_an_unsandboxed_runner_warns_on_every_build(
    bus: FakeBus, work_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = LocalRunner(
        bus, {}, work_root, command=[sys.executable, str(FAKE_BUILDER)], sandbox=NO_SANDBOX
    )
    assert runner.unsafe
    with caplog.at_level(logging.WARNING, logger="app.runners.local"):
        for deployment_id in ("dep-1", "dep-2"):
            await finished(runner, await runner.start(make_spec(deployment_id)))
    assert [r.getMessage() for r in caplog.records] == [
        "build runs without a sandbox (SCALEMESH_UNSAFE_LOCAL_BUILDS=1)"
    ] * 2
    for deployment_id in ("dep-1", "dep-2"):
        assert bus.events[deployment_id][0]["text"] == UNSAFE_WARNING
    await runner.aclose()


async def test_a_sandboxed_runner_says_nothing_of_the_kind(
    local: LocalRunner, bus: FakeBus, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.runners.local"):
        await finished(local, await local.start(make_spec()))
    assert not local.unsafe
    assert caplog.records == []
    assert UNSAFE_WARNING not in bus.texts("dep-1", "system")


async def test_events_reach_the_bus_in_order_with_stderr_and_secrets_masked(
    local: LocalRunner, bus: FakeBus, work_root: Path
) -> None:
    handle = await local.start(make_spec(SECRET="s3cret-value\nsecond-line"))
    assert handle.startswith("local:")

    state = await finished(local, handle)

    assert state == RunState(RunStatus.SUCCEEDED, exit_code=0)
    events = bus.events["dep-1"]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    from_stdout = [event for event in events if event.get("stream") != "stderr"]
    assert [(e["type"], e.get("stream"), e.get("text"), e.get("status")) for e in from_stdout] == [
        ("step", None, None, "start"),
        ("line", "stdout", "token ***", None),
        ("line", "system", "not json at all", None),
        ("line", "system", "[1, 2]", None),
        ("step", None, None, "end"),
    ]
    # A multi-line secret printed raw is masked line by line.
    assert bus.texts("dep-1", "stderr") == ["oops: ***", "***"]
    assert all(isinstance(event["ts"], float) for event in events)
    assert leftovers(work_root) == []  # the working directory is cleaned up


async def test_a_failed_build_reports_its_exit_code(local: LocalRunner) -> None:
    handle = await local.start(make_spec(FAKE_EXIT="3"))

    state = await finished(local, handle)

    assert state == RunState(RunStatus.FAILED, exit_code=3, reason="builder exited with code 3")
    assert await local.poll(handle) == state  # asking again gives the same answer
    await local.cancel(handle)  # a no-op for a finished build
    assert await local.poll(handle) == state


async def test_old_final_states_are_forgotten(
    local: LocalRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.runners.local.KEEP_FINISHED", 1)
    first = await local.start(make_spec("dep-1"))
    await finished(local, first)
    second = await local.start(make_spec("dep-2"))
    await finished(local, second)

    assert (await local.poll(first)).status is RunStatus.GONE
    assert (await local.poll(second)).status is RunStatus.SUCCEEDED


async def test_a_killed_builder_is_reported_with_its_signal(local: LocalRunner) -> None:
    handle = await local.start(make_spec(FAKE_MODE="signal"))

    assert await finished(local, handle) == RunState(
        RunStatus.FAILED, exit_code=137, reason="builder killed by signal 9 (SIGKILL)"
    )


async def test_concurrent_polls_of_a_finished_build_agree(local: LocalRunner) -> None:
    handle = await local.start(make_spec())
    process = local._builds[int(handle.rsplit(":", 1)[1])].process
    await eventually(lambda: process.returncode is not None)

    first, second = await asyncio.gather(local.poll(handle), local.poll(handle))

    assert first == second == RunState(RunStatus.SUCCEEDED, exit_code=0)


async def test_only_the_base_env_and_the_spec_reach_the_builder(
    local: LocalRunner,
    bus: FakeBus,
    work_root: Path,
    base_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCALEMESH_TEST_LEAK", "must not leak")
    spec = make_spec(FAKE_MODE="environ")

    assert (await finished(local, await local.start(spec))).status is RunStatus.SUCCEEDED

    (event,) = bus.events["dep-1"]
    environ: dict[str, str] = event["environ"]
    expected = {
        **base_env,
        SANDBOX: FAKE_SANDBOX,
        WORK_ROOT: event["cwd"],
        "PYTHONUNBUFFERED": "1",
    }
    assert {name: environ[name] for name in expected} == expected
    # Python itself may add LC_CTYPE (locale coercion); nothing else of ours gets in.
    assert set(environ) - set(expected) <= {"LC_CTYPE"}
    # The spec, clone token and env values included, came on stdin, not in the environment.
    assert event["spec"] == spec.to_json()
    assert not any(TOKEN in value for value in environ.values())
    assert Path(event["cwd"]).parent == work_root


async def test_the_builder_is_told_its_toolchain_cache(
    bus: FakeBus, work_root: Path, base_env: dict[str, str], tmp_path: Path
) -> None:
    runner = LocalRunner(
        bus,
        base_env,
        work_root,
        command=[sys.executable, str(FAKE_BUILDER)],
        sandbox=FAKE_SANDBOX,
        toolchains=tmp_path / "toolchains",
    )
    try:
        handle = await runner.start(make_spec(FAKE_MODE="environ"))
        assert (await finished(runner, handle)).status is RunStatus.SUCCEEDED
    finally:
        await runner.aclose()

    (event,) = bus.events["dep-1"]
    assert event["environ"][TOOLCHAINS] == str(tmp_path / "toolchains")


async def test_cancel_stops_the_whole_process_group(
    local: LocalRunner, bus: FakeBus, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    handle = await local.start(make_spec(FAKE_MODE="sleep", FAKE_PIDFILE=str(pidfile)))
    await eventually(lambda: "ready" in bus.texts("dep-1", "stdout"))
    builder, child = pids(pidfile)
    assert await local.poll(handle) == RunState(RunStatus.RUNNING)

    await local.cancel(handle)
    await local.cancel(handle)  # idempotent

    state = await finished(local, handle)
    assert state == RunState(RunStatus.FAILED, exit_code=143, reason=CANCELLED_REASON)
    await eventually(lambda: not alive(builder) and not alive(child))


async def test_cancel_kills_a_build_that_ignores_sigterm(
    local: LocalRunner, bus: FakeBus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pidfile = tmp_path / "pids"
    handle = await local.start(make_spec(FAKE_MODE="stubborn", FAKE_PIDFILE=str(pidfile)))
    await eventually(lambda: "ready" in bus.texts("dep-1", "stdout"))
    builder, child = pids(pidfile)

    await local.cancel(handle)
    # SIGTERM comes first, and the builder lives through it (it notes each one it gets)...
    await eventually(lambda: (tmp_path / "pids.term").exists())

    state = await finished(local, handle)  # ...then SIGKILL, after the grace period
    assert state == RunState(RunStatus.FAILED, exit_code=137, reason=CANCELLED_REASON)
    await eventually(lambda: not alive(builder) and not alive(child))
    assert "build ignored SIGTERM; killing it" in caplog.messages


async def test_a_cancelled_build_that_already_exited_is_wrapped_up(
    local: LocalRunner, bus: FakeBus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pidfile = tmp_path / "pids"
    handle = await local.start(make_spec(FAKE_MODE="sleep", FAKE_PIDFILE=str(pidfile)))
    await eventually(lambda: "ready" in bus.texts("dep-1", "stdout"))
    local._cancel_grace = 1.0  # ample time for the runner to see the builder exit first
    await local.cancel(handle)
    builder, _ = pids(pidfile)
    build = local._builds[builder]
    assert build.killer is not None
    await eventually(lambda: build.process.returncode is not None)
    # Polled after the grace period: the builder is gone, so nothing is killed.
    await asyncio.wait([build.killer])

    assert "build ignored SIGTERM; killing it" not in caplog.messages
    assert (await local.poll(handle)).reason == CANCELLED_REASON


async def test_handles_of_other_runners_are_gone(local: LocalRunner, bus: FakeBus) -> None:
    other = LocalRunner(bus, {}, Path("/nonexistent"), sandbox=FAKE_SANDBOX)
    await other.aclose()
    own_prefix = (await local.start(make_spec())).rsplit(":", 1)[0]
    restarted = RunState(RunStatus.GONE, reason="interrupted by a restart")

    assert await local.poll(f"local:{other._id}:{os.getpid()}") == restarted
    assert await local.poll("ecs:arn:aws:ecs:us-east-1:1:task/x/y") == restarted
    assert await local.poll(f"{own_prefix}:notapid") == restarted
    assert await local.poll(f"{own_prefix}:1") == RunState(
        RunStatus.GONE, reason="this runner has no record of the build"
    )
    await local.cancel(f"local:{other._id}:{os.getpid()}")  # no-op, and we are still here
    await local.cancel(f"{own_prefix}:1")


async def test_another_worker_sees_and_stops_a_build_it_did_not_start(
    local: LocalRunner, bus: FakeBus, work_root: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    handle = await local.start(make_spec(FAKE_MODE="sleep", FAKE_PIDFILE=str(pidfile)))
    await eventually(lambda: "ready" in bus.texts("dep-1", "stdout"))
    builder, child = pids(pidfile)
    other = LocalRunner(bus, {}, work_root, sandbox=FAKE_SANDBOX)

    # Alive under another worker of this machine: that worker reports its end, not us.
    assert await other.poll(handle) == RunState(RunStatus.RUNNING)
    await other.cancel(handle)

    state = await finished(local, handle)
    assert state.status is RunStatus.FAILED
    await eventually(lambda: not alive(builder) and not alive(child))
    assert await other.poll(handle) == RunState(RunStatus.GONE, reason="interrupted by a restart")
    assert await other.poll("local:x:0") == RunState(
        RunStatus.GONE, reason="interrupted by a restart"
    )
    await other.aclose()


async def test_aclose_kills_running_builds(
    bus: FakeBus, work_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = LocalRunner(
        bus, {}, work_root, command=[sys.executable, str(FAKE_BUILDER)], sandbox=FAKE_SANDBOX
    )
    pidfile = tmp_path / "pids"
    running = await runner.start(make_spec("dep-1", FAKE_MODE="sleep", FAKE_PIDFILE=str(pidfile)))
    done = await runner.start(make_spec("dep-2"))
    await eventually(lambda: "ready" in bus.texts("dep-1", "stdout"))
    process = runner._builds[int(done.rsplit(":", 1)[1])].process
    await eventually(lambda: process.returncode is not None)
    builder, child = pids(pidfile)

    await runner.aclose()

    await eventually(lambda: not alive(builder) and not alive(child))
    assert (await runner.poll(running)).exit_code == 137
    assert (await runner.poll(done)).status is RunStatus.SUCCEEDED
    assert leftovers(work_root) == []
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][-1] == (
        "build killed at shutdown"
    )
    with pytest.raises(RunnerError, match="shut down"):
        await runner.start(make_spec())


async def test_the_default_command_runs_the_builder_module(
    bus: FakeBus, work_root: Path, tmp_path: Path
) -> None:
    python = tmp_path / "python"
    python.write_text('#!/bin/sh\necho "{\\"type\\": \\"argv\\", \\"argv\\": \\"$*\\"}"\n')
    python.chmod(0o755)
    runner = LocalRunner(bus, {}, work_root, python=str(python), sandbox=FAKE_SANDBOX)

    assert (await finished(runner, await runner.start(make_spec()))).status is RunStatus.SUCCEEDED
    assert bus.events["dep-1"][0]["argv"] == "-P -m builder"
    await runner.aclose()


async def test_a_builder_that_cannot_start_is_a_runner_error(bus: FakeBus, work_root: Path) -> None:
    runner = LocalRunner(
        bus, {}, work_root, command=[str(work_root / "missing")], sandbox=FAKE_SANDBOX
    )

    with pytest.raises(RunnerError, match="could not start the builder"):
        await runner.start(make_spec())
    assert leftovers(work_root) == []
    await runner.aclose()
