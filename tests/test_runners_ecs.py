"""The ECS build runner against moto's ECS, and which runner the settings choose.

The exact requests the ECS runner sends, its retries and its error handling are checked
against botocore's Stubber in `test_runners_ecs_api.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto.moto_api import state_manager

from app.asgi import build_token_ttl, runner_from_settings
from app.logs.bus import MemoryLogBus
from app.runners.api import CANCELLED_REASON, RunnerError, RunState, RunStatus
from app.runners.ecs import EcsRunner
from app.settings import EcsSettings, Runner, Settings
from tests.support.ecs import (
    BUILD_TOKEN,
    TTL,
    FakeTokens,
    Unreachable,
    builds_cluster,
    make_spec,
)
from tests.support.s3_bucket import fake_aws

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def bus() -> MemoryLogBus:
    return MemoryLogBus()


def ecs_runner(client: Any, settings: EcsSettings) -> EcsRunner:
    return EcsRunner(client, settings, FakeTokens(), TTL)


@pytest.fixture
def moto_ecs() -> Iterator[tuple[Any, EcsSettings]]:
    with fake_aws():
        ecs, subnet, group = builds_cluster()
        yield (
            ecs,
            EcsSettings(
                cluster="builds",
                task_definition="builder",
                container="builder",
                subnets=(subnet,),
                security_groups=(group,),
                assign_public_ip=False,
                upload_role_arn="arn:aws:iam::123456789012:role/scalemesh-build-upload",
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
    runner = ecs_runner(client, settings)
    spec = make_spec()

    handle = await runner.start(spec)

    assert handle.startswith("ecs:arn:aws:ecs:")
    (task,) = client.describe_tasks(cluster="builds", tasks=[handle[4:]], include=["TAGS"])["tasks"]
    (override,) = task["overrides"]["containerOverrides"]
    assert override["name"] == "builder"
    assert override["environment"] == [{"name": "SCALEMESH_BUILD_TOKEN", "value": BUILD_TOKEN}]
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
    runner = ecs_runner(*moto_ecs)
    handle = await runner.start(make_spec())

    states = [await runner.poll(handle) for _ in range(10)]

    statuses = [state.status for state in states]
    first_done = statuses.index(RunStatus.SUCCEEDED)
    assert first_done >= 4
    assert set(statuses[:first_done]) == {RunStatus.RUNNING}
    assert states[-1] == RunState(RunStatus.SUCCEEDED, exit_code=0)


async def test_ecs_cancel_stops_the_task(moto_ecs: tuple[Any, EcsSettings]) -> None:
    runner = ecs_runner(*moto_ecs)
    handle = await runner.start(make_spec())

    await runner.cancel(handle)
    await runner.cancel(handle)  # stopping a stopped task is fine

    state = await runner.poll(handle)
    assert state.status is RunStatus.FAILED
    assert state.reason == CANCELLED_REASON


async def test_ecs_unknown_task_is_gone(moto_ecs: tuple[Any, EcsSettings]) -> None:
    runner = ecs_runner(*moto_ecs)

    state = await runner.poll("ecs:arn:aws:ecs:us-east-1:123456789012:task/builds/nope")

    assert state.status is RunStatus.GONE
    assert await runner.poll("local:abc:12") == RunState(RunStatus.GONE, reason="not an ECS build")
    await runner.cancel("local:abc:12")  # not ours: nothing to do


async def test_ecs_client_errors_become_runner_errors(moto_ecs: tuple[Any, EcsSettings]) -> None:
    client, settings = moto_ecs
    runner = ecs_runner(client, dataclasses.replace(settings, cluster="missing"))

    with pytest.raises(RunnerError, match="ClusterNotFoundException"):
        await runner.poll("ecs:arn:aws:ecs:us-east-1:123456789012:task/missing/x")


# --- runner_from_settings -----------------------------------------------------------------

ECS_ENV = {
    "SCALEMESH_RUNNER": "ecs",
    "SCALEMESH_ECS_CLUSTER": "builds",
    "SCALEMESH_ECS_TASK_DEFINITION": "builder",
    "SCALEMESH_ECS_SUBNETS": "subnet-1",
    "SCALEMESH_ECS_SECURITY_GROUPS": "sg-1",
    "SCALEMESH_ECS_UPLOAD_ROLE_ARN": "arn:aws:iam::123456789012:role/scalemesh-build-upload",
}


async def test_the_local_runner_is_the_default(
    make_settings: Callable[..., Settings], bus: MemoryLogBus
) -> None:
    from app.runners.local import LocalRunner

    settings = make_settings()
    runner = runner_from_settings(settings, bus)

    assert isinstance(runner, LocalRunner)
    await runner.aclose()


async def test_the_ecs_runner_needs_no_redis_and_issues_tokens_for_as_long_as_a_build_runs(
    make_settings: Callable[..., Settings], bus: MemoryLogBus
) -> None:
    settings = make_settings(**ECS_ENV, SCALEMESH_BUILD_TIMEOUT="600")
    borrowed = Unreachable()
    tokens = FakeTokens()

    runner = runner_from_settings(settings, bus, ecs_client=borrowed, tokens=tokens)
    assert isinstance(runner, EcsRunner)
    with pytest.raises(RunnerError):
        await runner.start(make_spec())
    assert tokens.issued == [("dep-1", build_token_ttl(settings))]
    assert build_token_ttl(settings).total_seconds() == 600 + 60
    await runner.aclose()
    assert not borrowed.closed

    own = runner_from_settings(settings, bus)  # makes (and later closes) a boto3 client
    assert isinstance(own, EcsRunner)
    await own.aclose()


async def test_the_ecs_runner_needs_its_settings(
    make_settings: Callable[..., Settings], bus: MemoryLogBus
) -> None:
    with pytest.raises(RunnerError, match="SCALEMESH_ECS_"):
        runner_from_settings(
            dataclasses.replace(make_settings(), runner=Runner.ECS), bus, ecs_client=Unreachable()
        )
