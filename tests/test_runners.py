"""Build runners: the local one against a fake builder, the ECS one against moto and Stubber."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import ANY, Stubber
from moto import mock_aws
from moto.moto_api import state_manager

from app.asgi import runner_from_settings
from app.runners.api import CANCELLED_REASON, RunnerError, RunState, RunStatus
from app.runners.ecs import OVERRIDES_LIMIT, EcsRunner
from app.runners.local import LocalRunner, _lines
from app.settings import Runner, Settings
from app.settings_parts import EcsSettings
from builder.events import LogEvent
from builder.spec import MAX_TEXT, BuildSpec, Masker

pytestmark = pytest.mark.anyio

FAKE_BUILDER = Path(__file__).parent / "fixtures" / "fake_builder.py"
SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghs_clonetoken123"
REDIS = "redis://:hunter22@redis:6379/0"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the local runner uses asyncio's subprocess API


class FakeBus:
    """Just enough of a `LogBus` to see what the runner appended."""

    def __init__(self, *, fail: bool = False) -> None:
        self.events: dict[str, list[LogEvent]] = {}
        self.fail = fail

    async def append(self, deployment_id: str, event: LogEvent) -> int:
        if self.fail:
            raise ConnectionError("bus unreachable")
        log = self.events.setdefault(deployment_id, [])
        log.append({**event, "seq": len(log) + 1})
        return len(log)

    async def read(self, deployment_id: str, since: int = 0) -> list[LogEvent]:
        return [event for event in self.events.get(deployment_id, []) if event["seq"] > since]

    async def tail(
        self, deployment_id: str, since: int = 0, *, heartbeat: float = 15.0
    ) -> AsyncGenerator[LogEvent | None, None]:
        for event in await self.read(deployment_id, since):
            yield event

    async def forget(self, deployment_id: str) -> None:
        self.events.pop(deployment_id, None)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def texts(self, deployment_id: str, stream: str) -> list[str]:
        return [
            str(event["text"])
            for event in self.events.get(deployment_id, [])
            if event.get("stream") == stream
        ]


def make_spec(deployment_id: str = "dep-1", **env: str) -> BuildSpec:
    return BuildSpec(
        deployment_id=deployment_id,
        project_id=7,
        git_url="https://github.com/octo/site.git",
        sha=SHA,
        storage_url="s3://bucket/prefix",
        git_ref="main",
        token=TOKEN,
        env=env,
    )


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 15.0
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def finished(runner: LocalRunner, handle: str) -> RunState:
    deadline = time.monotonic() + 15.0
    while (state := await runner.poll(handle)).status is RunStatus.RUNNING:
        assert time.monotonic() < deadline, "the build did not finish"
        await asyncio.sleep(0.02)
    return state


def leftovers(work_root: Path) -> list[Path]:
    """What the runner left in its work root (a quick listing: fine inside a test)."""
    return list(work_root.iterdir())


def pids(path: Path) -> list[int]:
    return [int(pid) for pid in path.read_text().split()]


def test_secret_values_cover_the_token_as_git_sends_it_and_skip_short_values() -> None:
    spec = make_spec(PEM="-----BEGIN KEY-----\nabcdef\n-----END KEY-----", SHORT="dev")
    secrets = Masker.for_spec(spec).secrets

    assert TOKEN in secrets
    assert base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode() in secrets
    assert {"abcdef", spec.env["PEM"]} <= set(secrets)
    assert "dev" not in secrets
    assert secrets[0] == spec.env["PEM"]  # longest first
    assert Masker.for_spec(dataclasses.replace(spec, token="", env={})).secrets == ()


# --- LocalRunner --------------------------------------------------------------------------


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


@pytest.fixture
def work_root(tmp_path: Path) -> Path:
    return tmp_path / "builds"


@pytest.fixture
def base_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "SCALEMESH_TEST_BASE": "from-base"}


@pytest.fixture
async def local(
    bus: FakeBus, work_root: Path, base_env: dict[str, str]
) -> AsyncIterator[LocalRunner]:
    runner = LocalRunner(
        bus, base_env, work_root, command=[sys.executable, str(FAKE_BUILDER)], cancel_grace=0.3
    )
    yield runner
    await runner.aclose()


async def test_construction_warns_that_builds_are_not_sandboxed(
    bus: FakeBus, work_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.runners.local"):
        runner = LocalRunner(bus, {}, work_root)
    assert [r.getMessage() for r in caplog.records] == [
        "local builds are not sandboxed: project code runs as this user"
    ]
    await runner.aclose()


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
    await until(lambda: local._builds[int(handle.rsplit(":", 1)[1])].process.returncode is not None)

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
    spec = dataclasses.replace(make_spec(FAKE_MODE="environ"), log_sink=REDIS)

    assert (await finished(local, await local.start(spec))).status is RunStatus.SUCCEEDED

    (event,) = bus.events["dep-1"]
    environ: dict[str, str] = event["environ"]
    expected = {**base_env, **dataclasses.replace(spec, log_sink="stdout").to_env()}
    assert {name: environ[name] for name in expected} == expected
    assert environ["SCALEMESH_BUILD_LOG_SINK"] == "stdout"
    # Python itself may add LC_CTYPE (locale coercion); nothing else of ours gets in.
    assert set(environ) - set(expected) <= {"PYTHONUNBUFFERED", "LC_CTYPE"}
    assert Path(event["cwd"]).parent == work_root


async def test_cancel_stops_the_whole_process_group(
    local: LocalRunner, bus: FakeBus, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    handle = await local.start(make_spec(FAKE_MODE="sleep", FAKE_PIDFILE=str(pidfile)))
    await until(lambda: "ready" in bus.texts("dep-1", "stdout"))
    builder, child = pids(pidfile)
    assert await local.poll(handle) == RunState(RunStatus.RUNNING)

    await local.cancel(handle)
    await local.cancel(handle)  # idempotent

    state = await finished(local, handle)
    assert state == RunState(RunStatus.FAILED, exit_code=143, reason=CANCELLED_REASON)
    await until(lambda: not alive(builder) and not alive(child))


async def test_cancel_kills_a_build_that_ignores_sigterm(
    local: LocalRunner, bus: FakeBus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pidfile = tmp_path / "pids"
    handle = await local.start(make_spec(FAKE_MODE="stubborn", FAKE_PIDFILE=str(pidfile)))
    await until(lambda: "ready" in bus.texts("dep-1", "stdout"))
    builder, child = pids(pidfile)

    await local.cancel(handle)
    await asyncio.sleep(0.1)
    assert alive(builder)  # SIGTERM is ignored; SIGKILL follows after the grace period

    state = await finished(local, handle)
    assert state == RunState(RunStatus.FAILED, exit_code=137, reason=CANCELLED_REASON)
    await until(lambda: not alive(builder) and not alive(child))
    assert "build ignored SIGTERM; killing it" in caplog.messages


async def test_a_cancelled_build_that_already_exited_is_wrapped_up(
    local: LocalRunner, bus: FakeBus, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    handle = await local.start(make_spec(FAKE_MODE="sleep", FAKE_PIDFILE=str(pidfile)))
    await until(lambda: "ready" in bus.texts("dep-1", "stdout"))
    await local.cancel(handle)
    builder, _ = pids(pidfile)
    # Polled after the grace period, when the SIGKILL has gone to an empty group.
    await until(lambda: not alive(builder))
    await asyncio.sleep(0.4)

    assert (await local.poll(handle)).reason == CANCELLED_REASON


async def test_handles_of_other_runners_are_gone(local: LocalRunner, bus: FakeBus) -> None:
    other = LocalRunner(bus, {}, Path("/nonexistent"))
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
    await until(lambda: "ready" in bus.texts("dep-1", "stdout"))
    builder, child = pids(pidfile)
    other = LocalRunner(bus, {}, work_root)

    # Alive under another worker of this machine: that worker reports its end, not us.
    assert await other.poll(handle) == RunState(RunStatus.RUNNING)
    await other.cancel(handle)

    state = await finished(local, handle)
    assert state.status is RunStatus.FAILED
    await until(lambda: not alive(builder) and not alive(child))
    assert await other.poll(handle) == RunState(RunStatus.GONE, reason="interrupted by a restart")
    assert await other.poll("local:x:0") == RunState(
        RunStatus.GONE, reason="interrupted by a restart"
    )
    await other.aclose()


async def test_aclose_kills_running_builds(
    bus: FakeBus, work_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = LocalRunner(bus, {}, work_root, command=[sys.executable, str(FAKE_BUILDER)])
    pidfile = tmp_path / "pids"
    running = await runner.start(make_spec("dep-1", FAKE_MODE="sleep", FAKE_PIDFILE=str(pidfile)))
    done = await runner.start(make_spec("dep-2"))
    await until(lambda: "ready" in bus.texts("dep-1", "stdout"))
    await until(lambda: runner._builds[int(done.rsplit(":", 1)[1])].process.returncode is not None)
    builder, child = pids(pidfile)

    await runner.aclose()

    await until(lambda: not alive(builder) and not alive(child))
    assert (await runner.poll(running)).exit_code == 137
    assert (await runner.poll(done)).status is RunStatus.SUCCEEDED
    assert leftovers(work_root) == []
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][-1] == (
        "build killed at shutdown"
    )
    with pytest.raises(RunnerError, match="shut down"):
        await runner.start(make_spec())


async def test_odd_output_is_split_and_decoded(
    local: LocalRunner, bus: FakeBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.runners.local.MAX_LINE", 10_000)
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
    monkeypatch.setattr("app.runners.local.MAX_LINE", 4)
    stream = asyncio.StreamReader()
    stream.feed_data(b"abcd\nabcdef\n\nabc")
    stream.feed_eof()

    # "abcd" is cut before its newline is seen; "abcdef" arrives whole (at most 2 * MAX_LINE
    # is ever buffered); the empty line is real.
    assert [line async for line in _lines(stream)] == ["abcd", "abcdef", "", "abc"]


async def test_a_failing_bus_does_not_stall_the_build(
    work_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = LocalRunner(
        FakeBus(fail=True), {}, work_root, command=[sys.executable, str(FAKE_BUILDER)]
    )
    handle = await runner.start(make_spec())

    assert (await finished(runner, handle)).status is RunStatus.SUCCEEDED
    lost = [r for r in caplog.records if r.getMessage() == "build log line lost"]
    assert len(lost) == 2  # once per stream, not once per line
    assert lost[0].__dict__["deployment_id"] == "dep-1"
    await runner.aclose()


async def test_an_escaped_child_cannot_hold_the_build_open(
    bus: FakeBus, work_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = LocalRunner(
        bus, {}, work_root, command=[sys.executable, str(FAKE_BUILDER)], drain_timeout=0.2
    )
    pidfile = tmp_path / "pids"
    handle = await runner.start(make_spec(FAKE_MODE="escape", FAKE_PIDFILE=str(pidfile)))

    assert (await finished(runner, handle)).status is RunStatus.SUCCEEDED
    assert "build left processes holding its output open" in caplog.messages
    (escaped,) = pids(pidfile)
    try:
        await asyncio.sleep(1.3)  # the escaped child prints after a second: not stored
        assert "late" not in bus.texts("dep-1", "system")
    finally:
        os.kill(escaped, signal.SIGKILL)
    await runner.aclose()  # waits for the output to close, then drops it


async def test_the_default_command_runs_the_builder_module(
    bus: FakeBus, work_root: Path, tmp_path: Path
) -> None:
    python = tmp_path / "python"
    python.write_text('#!/bin/sh\necho "{\\"type\\": \\"argv\\", \\"argv\\": \\"$*\\"}"\n')
    python.chmod(0o755)
    runner = LocalRunner(bus, {}, work_root, python=str(python))

    assert (await finished(runner, await runner.start(make_spec()))).status is RunStatus.SUCCEEDED
    assert bus.events["dep-1"][0]["argv"] == "-P -m builder"
    await runner.aclose()


async def test_a_builder_that_cannot_start_is_a_runner_error(bus: FakeBus, work_root: Path) -> None:
    runner = LocalRunner(bus, {}, work_root, command=[str(work_root / "missing")])

    with pytest.raises(RunnerError, match="could not start the builder"):
        await runner.start(make_spec())
    assert leftovers(work_root) == []
    await runner.aclose()


# --- EcsRunner against moto ---------------------------------------------------------------


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def moto_ecs() -> Iterator[tuple[Any, EcsSettings]]:
    with mock_aws():
        ecs = boto3.client("ecs", region_name="us-east-1")
        ec2 = boto3.client("ec2", region_name="us-east-1")
        ecs.create_cluster(clusterName="builds")
        ecs.register_task_definition(
            family="builder",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="1024",
            memory="2048",
            # moto needs container-level memory (LIBRARY-NOTES §4).
            containerDefinitions=[
                {"name": "builder", "image": "scalemesh/builder", "essential": True, "memory": 2048}
            ],
        )
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="builds", Description="b", VpcId=vpc)
        yield (
            ecs,
            EcsSettings(
                cluster="builds",
                task_definition="builder",
                container="builder",
                subnets=(subnet,),
                security_groups=(group["GroupId"],),
                assign_public_ip=False,
            ),
        )


@pytest.fixture
def slow_tasks() -> Iterator[None]:
    """moto moves a task one status along every second describe call."""
    state_manager.set_transition(
        model_name="ecs::task", transition={"progression": "manual", "times": 2}
    )
    yield
    state_manager.unset_transition("ecs::task")


async def test_ecs_run_task_request(moto_ecs: tuple[Any, EcsSettings]) -> None:
    client, settings = moto_ecs
    runner = EcsRunner(client, settings, REDIS)
    spec = make_spec(API_KEY="abc123")

    handle = await runner.start(spec)

    assert handle.startswith("ecs:arn:aws:ecs:")
    (task,) = client.describe_tasks(cluster="builds", tasks=[handle[4:]], include=["TAGS"])["tasks"]
    (override,) = task["overrides"]["containerOverrides"]
    assert override["name"] == "builder"
    environment = {item["name"]: item["value"] for item in override["environment"]}
    assert environment == {**spec.to_env(), "SCALEMESH_BUILD_LOG_SINK": REDIS}
    assert task["tags"] == [
        {"key": "scalemesh:deployment", "value": "dep-1"},
        {"key": "scalemesh:project", "value": "7"},
    ]
    assert task["startedBy"] == "scalemesh"
    assert task["launchType"] == "FARGATE"
    details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    assert details["subnetId"] == settings.subnets[0]


@pytest.mark.usefixtures("slow_tasks")
async def test_ecs_task_progresses_to_succeeded(moto_ecs: tuple[Any, EcsSettings]) -> None:
    runner = EcsRunner(*moto_ecs, REDIS)
    handle = await runner.start(make_spec())

    states = [await runner.poll(handle) for _ in range(10)]

    statuses = [state.status for state in states]
    first_done = statuses.index(RunStatus.SUCCEEDED)
    assert first_done >= 4
    assert set(statuses[:first_done]) == {RunStatus.RUNNING}
    assert states[-1] == RunState(RunStatus.SUCCEEDED, exit_code=0)


async def test_ecs_cancel_stops_the_task(moto_ecs: tuple[Any, EcsSettings]) -> None:
    runner = EcsRunner(*moto_ecs, REDIS)
    handle = await runner.start(make_spec())

    await runner.cancel(handle)
    await runner.cancel(handle)  # stopping a stopped task is fine

    state = await runner.poll(handle)
    assert state.status is RunStatus.FAILED
    assert state.reason == CANCELLED_REASON


async def test_ecs_unknown_task_is_gone(moto_ecs: tuple[Any, EcsSettings]) -> None:
    runner = EcsRunner(*moto_ecs, REDIS)

    state = await runner.poll("ecs:arn:aws:ecs:us-east-1:123456789012:task/builds/nope")

    assert state.status is RunStatus.GONE
    assert await runner.poll("local:abc:12") == RunState(RunStatus.GONE, reason="not an ECS build")
    await runner.cancel("local:abc:12")  # not ours: nothing to do


async def test_ecs_client_errors_become_runner_errors(moto_ecs: tuple[Any, EcsSettings]) -> None:
    client, settings = moto_ecs
    runner = EcsRunner(client, dataclasses.replace(settings, cluster="missing"), REDIS)

    with pytest.raises(RunnerError, match="ClusterNotFoundException"):
        await runner.poll("ecs:arn:aws:ecs:us-east-1:123456789012:task/missing/x")


# --- EcsRunner against Stubber ------------------------------------------------------------

SETTINGS = EcsSettings(
    cluster="builds",
    task_definition="builder:3",
    container="builder",
    subnets=("subnet-1", "subnet-2"),
    security_groups=("sg-1",),
    assign_public_ip=True,
)
ARN = "arn:aws:ecs:us-east-1:123456789012:task/builds/0123456789abcdef"


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("ecs", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def run_task_params(spec: BuildSpec) -> dict[str, Any]:
    environment = {**spec.to_env(), "SCALEMESH_BUILD_LOG_SINK": REDIS}
    return {
        "cluster": "builds",
        "taskDefinition": "builder:3",
        "launchType": "FARGATE",
        "count": 1,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": ["subnet-1", "subnet-2"],
                "securityGroups": ["sg-1"],
                "assignPublicIp": "ENABLED",
            }
        },
        "overrides": {
            "containerOverrides": [
                {
                    "name": "builder",
                    "environment": [{"name": k, "value": v} for k, v in environment.items()],
                }
            ]
        },
        "startedBy": "scalemesh",
        "tags": [
            {"key": "scalemesh:deployment", "value": "dep-1"},
            {"key": "scalemesh:project", "value": "7"},
        ],
        "enableExecuteCommand": False,
        "propagateTags": "TASK_DEFINITION",
        "clientToken": ANY,
    }


STARTED = {"tasks": [{"taskArn": ARN}], "failures": []}


def no_capacity(reason: str = "RESOURCE:MEMORY") -> dict[str, Any]:
    return {"tasks": [], "failures": [{"reason": reason, "detail": "try later"}]}


async def test_ecs_run_task_parameters_are_exact(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    spec = make_spec(API_KEY="abc123")
    stubber.add_response("run_task", STARTED, run_task_params(spec))

    assert await EcsRunner(client, SETTINGS, REDIS).start(spec) == f"ecs:{ARN}"


async def test_ecs_capacity_failures_and_throttling_are_retried(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, stubber = stubbed
    spec = make_spec()
    stubber.add_response("run_task", no_capacity(), run_task_params(spec))
    stubber.add_client_error("run_task", "ThrottlingException", "Rate exceeded")
    stubber.add_client_error("run_task", "Weird", "Internal", http_status_code=503)
    stubber.add_response("run_task", STARTED, run_task_params(spec))
    sleeps = Sleeps()

    handle = await EcsRunner(client, SETTINGS, REDIS, sleep=sleeps).start(spec)

    assert handle == f"ecs:{ARN}"
    assert sleeps.delays == [1, 2, 4]


async def test_ecs_gives_up_after_the_last_attempt(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    for _ in range(4):
        stubber.add_response("run_task", no_capacity())
    sleeps = Sleeps()

    with pytest.raises(RunnerError) as caught:
        await EcsRunner(client, SETTINGS, REDIS, sleep=sleeps).start(make_spec())

    assert str(caught.value) == "ECS could not start the build: RESOURCE:MEMORY (try later)"
    assert sleeps.delays == [1, 2, 4]


async def test_ecs_does_not_retry_what_cannot_succeed(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("run_task", no_capacity("ATTRIBUTE"))
    stubber.add_client_error("run_task", "AccessDeniedException", f"not allowed: {TOKEN}")
    stubber.add_response("run_task", {"tasks": [], "failures": []})
    sleeps = Sleeps()
    runner = EcsRunner(client, SETTINGS, REDIS, sleep=sleeps, attempts=1)

    with pytest.raises(RunnerError, match=r"ATTRIBUTE \(try later\)$"):
        await runner.start(make_spec())
    with pytest.raises(RunnerError) as caught:
        await runner.start(make_spec())
    # An error that echoes the request must not echo the token.
    assert (
        str(caught.value)
        == "ECS could not start the build: AccessDeniedException: not allowed: ***"
    )
    assert caught.value.__cause__ is None
    with pytest.raises(RunnerError, match="ECS started no task"):
        await runner.start(make_spec())
    assert sleeps.delays == []


async def test_ecs_refuses_env_vars_too_large_for_overrides(stubbed: tuple[Any, Stubber]) -> None:
    client, _ = stubbed

    with pytest.raises(RunnerError, match="env vars are too large for ECS overrides"):
        await EcsRunner(client, SETTINGS, REDIS).start(make_spec(BIG="x" * OVERRIDES_LIMIT))


def described(task: dict[str, Any]) -> dict[str, Any]:
    return {"tasks": [{"taskArn": ARN, **task}], "failures": []}


def builder(**fields: Any) -> dict[str, Any]:
    return {"name": "builder", **fields}


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        pytest.param({"lastStatus": "PROVISIONING"}, RunState(RunStatus.RUNNING), id="running"),
        pytest.param(
            {
                "lastStatus": "STOPPED",
                "stopCode": "EssentialContainerExited",
                "stoppedReason": "Essential container in task exited",
                "containers": [{"name": "sidecar", "exitCode": 1}, builder(exitCode=0)],
            },
            RunState(RunStatus.SUCCEEDED, exit_code=0),
            id="succeeded",
        ),
        pytest.param(
            {
                "lastStatus": "STOPPED",
                "stopCode": "EssentialContainerExited",
                "stoppedReason": "Essential container in task exited",
                "containers": [builder(exitCode=1)],
            },
            RunState(RunStatus.FAILED, exit_code=1, reason="builder exited with code 1"),
            id="failed",
        ),
        pytest.param(
            {
                "lastStatus": "STOPPED",
                "stopCode": "EssentialContainerExited",
                "containers": [builder(exitCode=137, reason="OutOfMemoryError: killed")],
            },
            RunState(
                RunStatus.FAILED,
                exit_code=137,
                reason="builder exited with code 137: OutOfMemoryError: killed",
            ),
            id="out-of-memory",
        ),
        pytest.param(
            {
                "lastStatus": "STOPPED",
                "stopCode": "TaskFailedToStart",
                "stoppedReason": "Task failed to start",
                "containers": [builder(reason="CannotPullContainerError: no such image")],
            },
            RunState(RunStatus.FAILED, reason="CannotPullContainerError: no such image"),
            id="cannot-pull",
        ),
        pytest.param(
            {
                "lastStatus": "STOPPED",
                "stopCode": "UserInitiated",
                "stoppedReason": CANCELLED_REASON,
                "containers": [builder(exitCode=143)],
            },
            RunState(RunStatus.FAILED, exit_code=143, reason=CANCELLED_REASON),
            id="cancelled",
        ),
        pytest.param(
            {
                "lastStatus": "STOPPED",
                "stopCode": "SpotInterruption",
                "containers": [builder(exitCode=0)],
            },
            RunState(
                RunStatus.FAILED,
                exit_code=0,
                reason="the build task stopped before the builder finished",
            ),
            id="interrupted",
        ),
        pytest.param(
            {"lastStatus": "STOPPED", "containers": [{"name": "other", "exitCode": 0}]},
            RunState(RunStatus.FAILED, reason="the build task has no container named 'builder'"),
            id="no-such-container",
        ),
    ],
)
async def test_ecs_poll_reads_the_task(
    stubbed: tuple[Any, Stubber], task: dict[str, Any], expected: RunState
) -> None:
    client, stubber = stubbed
    stubber.add_response("describe_tasks", described(task), {"cluster": "builds", "tasks": [ARN]})

    assert await EcsRunner(client, SETTINGS, REDIS).poll(f"ecs:{ARN}") == expected


async def test_ecs_poll_failures(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    runner = EcsRunner(client, SETTINGS, REDIS)
    stubber.add_response(
        "describe_tasks", {"tasks": [], "failures": [{"arn": ARN, "reason": "MISSING"}]}
    )
    stubber.add_response(
        "describe_tasks", {"tasks": [], "failures": [{"arn": ARN, "reason": "ODD"}]}
    )
    stubber.add_client_error("describe_tasks", "ThrottlingException", "Rate exceeded")

    assert (await runner.poll(f"ecs:{ARN}")).status is RunStatus.GONE
    with pytest.raises(RunnerError, match="ODD"):
        await runner.poll(f"ecs:{ARN}")
    with pytest.raises(RunnerError, match="ThrottlingException: Rate exceeded"):
        await runner.poll(f"ecs:{ARN}")


async def test_ecs_cancel_errors(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    runner = EcsRunner(client, SETTINGS, REDIS)
    expected = {"cluster": "builds", "task": ARN, "reason": CANCELLED_REASON}
    stubber.add_client_error(
        "stop_task",
        "InvalidParameterException",
        "The referenced task was not found.",
        expected_params=expected,
    )
    stubber.add_client_error("stop_task", "InvalidParameterException", "Bad cluster")
    stubber.add_client_error("stop_task", "AccessDeniedException", "no")

    await runner.cancel(f"ecs:{ARN}")  # forgotten by ECS: nothing left to stop
    with pytest.raises(RunnerError, match="Bad cluster"):
        await runner.cancel(f"ecs:{ARN}")
    with pytest.raises(RunnerError, match="AccessDeniedException"):
        await runner.cancel(f"ecs:{ARN}")


class Unreachable:
    """An ECS client whose endpoint cannot be reached."""

    def __init__(self) -> None:
        self.closed = False

    def _fail(self, **kwargs: Any) -> dict[str, Any]:
        raise EndpointConnectionError(endpoint_url="https://ecs.us-east-1.amazonaws.com/")

    run_task = describe_tasks = stop_task = _fail

    def close(self) -> None:
        self.closed = True


async def test_ecs_connection_errors_become_runner_errors() -> None:
    client = Unreachable()
    runner = EcsRunner(client, SETTINGS, REDIS, owns_client=True)

    with pytest.raises(RunnerError, match="could not start the build: Could not connect"):
        await runner.start(make_spec())
    with pytest.raises(RunnerError, match="could not describe"):
        await runner.poll(f"ecs:{ARN}")
    with pytest.raises(RunnerError, match="could not stop"):
        await runner.cancel(f"ecs:{ARN}")
    await runner.aclose()
    assert client.closed


async def test_ecs_runner_leaves_a_borrowed_client_open() -> None:
    client = Unreachable()

    await EcsRunner(client, SETTINGS, REDIS).aclose()

    assert not client.closed


# --- runner_from_settings -----------------------------------------------------------------

ECS_ENV = {
    "SCALEMESH_RUNNER": "ecs",
    "SCALEMESH_ECS_CLUSTER": "builds",
    "SCALEMESH_ECS_TASK_DEFINITION": "builder",
    "SCALEMESH_ECS_SUBNETS": "subnet-1",
    "SCALEMESH_ECS_SECURITY_GROUPS": "sg-1",
}


async def test_the_local_runner_is_the_default(
    make_settings: Callable[..., Settings], bus: FakeBus
) -> None:
    settings = make_settings()
    runner = runner_from_settings(settings, bus)

    assert isinstance(runner, LocalRunner)
    assert runner._work_root == settings.data_dir / "builds"
    await runner.aclose()


async def test_the_ecs_runner_writes_its_log_to_redis(
    make_settings: Callable[..., Settings], bus: FakeBus
) -> None:
    settings = make_settings(**ECS_ENV, SCALEMESH_REDIS_URL=REDIS)
    borrowed = Unreachable()

    runner = runner_from_settings(settings, bus, ecs_client=borrowed)
    assert isinstance(runner, EcsRunner)
    assert runner._log_sink == REDIS
    await runner.aclose()
    assert not borrowed.closed

    own = runner_from_settings(settings, bus)  # makes (and later closes) a boto3 client
    assert isinstance(own, EcsRunner)
    await own.aclose()


async def test_the_ecs_runner_needs_redis_and_its_settings(
    make_settings: Callable[..., Settings], bus: FakeBus
) -> None:
    settings = make_settings(**ECS_ENV)

    with pytest.raises(RunnerError, match="needs SCALEMESH_REDIS_URL"):
        runner_from_settings(settings, bus, ecs_client=Unreachable())
    with pytest.raises(RunnerError, match="SCALEMESH_ECS_"):
        runner_from_settings(
            dataclasses.replace(make_settings(), runner=Runner.ECS), bus, ecs_client=Unreachable()
        )
