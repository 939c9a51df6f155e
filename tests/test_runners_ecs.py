"""The ECS build runner against moto's ECS, and which runner the settings choose.

The exact requests the ECS runner sends, its retries and its error handling are checked
against botocore's Stubber in `test_runners_ecs_api.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.moto_api import state_manager

from app.asgi import runner_from_settings
from app.runners.api import CANCELLED_REASON, RunnerError, RunState, RunStatus
from app.runners.ecs import EcsRunner
from app.runners.local import LocalRunner
from app.settings import EcsSettings, Runner, Settings
from tests.support.runners import REDIS, FakeBus, Unreachable, make_spec

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


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
