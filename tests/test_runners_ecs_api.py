"""The ECS build runner's requests, retries and errors, against botocore's Stubber.

Stubber checks each request against ECS's service model, so the parameters here are exactly
what ECS would receive.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from app.runners.api import CANCELLED_REASON, RunnerError, RunState, RunStatus
from app.runners.ecs import EcsRunner
from app.settings import EcsSettings
from builder.spec import BuildSpec
from tests.support.ecs import (
    BUILD_TOKEN,
    CLONE_TOKEN,
    SECRET_VALUE,
    TTL,
    Accepting,
    FakeTokens,
    Unreachable,
    make_spec,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


SETTINGS = EcsSettings(
    cluster="builds",
    task_definition="builder:3",
    container="builder",
    subnets=("subnet-1", "subnet-2"),
    security_groups=("sg-1",),
    assign_public_ip=True,
    upload_role_arn="arn:aws:iam::123456789012:role/scalemesh-build-upload",
)
ARN = "arn:aws:ecs:us-east-1:123456789012:task/builds/0123456789abcdef"


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("ecs", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def runner(client: Any, **options: Any) -> EcsRunner:
    return EcsRunner(client, SETTINGS, FakeTokens(), TTL, **options)


def run_task_params(spec: BuildSpec) -> dict[str, Any]:
    """The whole request: the build's one secret is its bootstrap token, its only override."""
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
                    "environment": [
                        {
                            "name": "SCALEMESH_BUILD_TOKEN",
                            "value": f"{spec.deployment_id}.bootstrap-secret",
                        }
                    ],
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
    spec = make_spec()
    stubber.add_response("run_task", STARTED, run_task_params(spec))
    tokens = FakeTokens()

    assert await EcsRunner(client, SETTINGS, tokens, TTL).start(spec) == f"ecs:{ARN}"

    assert tokens.issued == [("dep-1", TTL)]


async def test_nothing_of_the_spec_but_its_ids_reaches_ecs() -> None:
    client = Accepting()

    await runner(client).start(make_spec(OTHER="another-secret-value"))

    (request,) = client.requests
    (override,) = request["overrides"]["containerOverrides"]
    assert override["environment"] == [{"name": "SCALEMESH_BUILD_TOKEN", "value": BUILD_TOKEN}]
    assert set(override) == {"name", "environment"}
    text = json.dumps(request)
    for secret in (CLONE_TOKEN, SECRET_VALUE, "another-secret-value", "redis", "API_KEY"):
        assert secret not in text


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

    handle = await runner(client, sleep=sleeps).start(spec)

    assert handle == f"ecs:{ARN}"
    assert sleeps.delays == [1, 2, 4]


async def test_ecs_gives_up_after_the_last_attempt(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    for _ in range(4):
        stubber.add_response("run_task", no_capacity())
    sleeps = Sleeps()

    with pytest.raises(RunnerError) as caught:
        await runner(client, sleep=sleeps).start(make_spec())

    assert str(caught.value) == "ECS could not start the build: RESOURCE:MEMORY (try later)"
    assert sleeps.delays == [1, 2, 4]


async def test_ecs_does_not_retry_what_cannot_succeed(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    stubber.add_response("run_task", no_capacity("ATTRIBUTE"))
    stubber.add_client_error("run_task", "AccessDeniedException", f"not allowed: {BUILD_TOKEN}")
    stubber.add_response("run_task", {"tasks": [], "failures": []})
    sleeps = Sleeps()
    ecs = runner(client, sleep=sleeps, attempts=1)

    with pytest.raises(RunnerError, match=r"ATTRIBUTE \(try later\)$"):
        await ecs.start(make_spec())
    with pytest.raises(RunnerError) as caught:
        await ecs.start(make_spec())
    # An error that echoes the request must not echo the token.
    assert (
        str(caught.value)
        == "ECS could not start the build: AccessDeniedException: not allowed: ***"
    )
    assert caught.value.__cause__ is None
    with pytest.raises(RunnerError, match="ECS started no task"):
        await ecs.start(make_spec())
    assert sleeps.delays == []


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

    assert await runner(client).poll(f"ecs:{ARN}") == expected


async def test_ecs_poll_failures(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    ecs = runner(client)
    stubber.add_response(
        "describe_tasks", {"tasks": [], "failures": [{"arn": ARN, "reason": "MISSING"}]}
    )
    stubber.add_response(
        "describe_tasks", {"tasks": [], "failures": [{"arn": ARN, "reason": "ODD"}]}
    )
    stubber.add_client_error("describe_tasks", "ThrottlingException", "Rate exceeded")

    assert (await ecs.poll(f"ecs:{ARN}")).status is RunStatus.GONE
    with pytest.raises(RunnerError, match="ODD"):
        await ecs.poll(f"ecs:{ARN}")
    with pytest.raises(RunnerError, match="ThrottlingException: Rate exceeded"):
        await ecs.poll(f"ecs:{ARN}")


async def test_ecs_cancel_errors(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    ecs = runner(client)
    expected = {"cluster": "builds", "task": ARN, "reason": CANCELLED_REASON}
    stubber.add_client_error(
        "stop_task",
        "InvalidParameterException",
        "The referenced task was not found.",
        expected_params=expected,
    )
    stubber.add_client_error("stop_task", "InvalidParameterException", "Bad cluster")
    stubber.add_client_error("stop_task", "AccessDeniedException", "no")

    await ecs.cancel(f"ecs:{ARN}")  # forgotten by ECS: nothing left to stop
    with pytest.raises(RunnerError, match="Bad cluster"):
        await ecs.cancel(f"ecs:{ARN}")
    with pytest.raises(RunnerError, match="AccessDeniedException"):
        await ecs.cancel(f"ecs:{ARN}")


async def test_ecs_connection_errors_become_runner_errors() -> None:
    client = Unreachable()
    ecs = runner(client, owns_client=True)

    with pytest.raises(RunnerError, match="could not start the build: Could not connect"):
        await ecs.start(make_spec())
    with pytest.raises(RunnerError, match="could not describe"):
        await ecs.poll(f"ecs:{ARN}")
    with pytest.raises(RunnerError, match="could not stop"):
        await ecs.cancel(f"ecs:{ARN}")
    await ecs.aclose()
    assert client.closed


async def test_ecs_runner_leaves_a_borrowed_client_open() -> None:
    client = Unreachable()

    await runner(client).aclose()

    assert not client.closed
