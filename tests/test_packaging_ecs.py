"""deploy/ecs: the builder's task definition runs under the real `EcsRunner`, least privilege.

moto registers the task definition exactly as written and checks the IAM policy grammar; the
runner's `run_task` call is recorded and compared with the task definition and the settings
from deploy/k8s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from moto import mock_aws

from app.runners.ecs import EcsRunner
from app.settings import Settings
from builder.spec import LOGS_ROOT, OUTPUTS_ROOT, BuildSpec
from tests.support.k8s import configmap

ROOT = Path(__file__).resolve().parent.parent
ECS = ROOT / "deploy" / "ecs"
REGION = "us-east-1"
REDIS = "redis://redis.internal:6379/0"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ECS / name).read_text())
    return document


TASK_DEFINITION = load("builder-task-definition.json")
API_POLICY = load("api-policy.json")
BUILDER_POLICY = load("builder-task-role-policy.json")
PROXY_POLICY = load("proxy-policy.json")


def bucket() -> str:
    return urlsplit(configmap()["SCALEMESH_STORAGE_URL"]).netloc


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    assert policy["Version"] == "2012-10-17"
    found: list[dict[str, Any]] = policy["Statement"]
    for statement in found:
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement
        assert "NotResource" not in statement
    return found


def listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def grants(policy: dict[str, Any]) -> dict[str, set[str]]:
    """Each action with every resource it is allowed on."""
    allowed: dict[str, set[str]] = {}
    for statement in statements(policy):
        for action in listed(statement["Action"]):
            allowed.setdefault(action, set()).update(listed(statement["Resource"]))
    return allowed


class RecordingClient:
    """A boto3 ECS client that remembers each `run_task` request before passing it on."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.run_task_calls: list[dict[str, Any]] = []

    def run_task(self, **kwargs: Any) -> dict[str, Any]:
        self.run_task_calls.append(kwargs)
        response: dict[str, Any] = self.client.run_task(**kwargs)
        return response

    def describe_tasks(self, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = self.client.describe_tasks(**kwargs)
        return response

    def stop_task(self, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = self.client.stop_task(**kwargs)
        return response

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def test_task_definition_is_fargate_awsvpc_with_logs_and_the_configured_container() -> None:
    config = configmap()
    (box,) = TASK_DEFINITION["containerDefinitions"]

    assert TASK_DEFINITION["requiresCompatibilities"] == ["FARGATE"]
    assert TASK_DEFINITION["networkMode"] == "awsvpc"
    assert TASK_DEFINITION["family"] == config["SCALEMESH_ECS_TASK_DEFINITION"]
    assert box["name"] == config["SCALEMESH_ECS_CONTAINER"]
    # ... which is also the name the settings assume when SCALEMESH_ECS_CONTAINER is unset.
    required = ("CLUSTER", "TASK_DEFINITION", "SUBNETS", "SECURITY_GROUPS")
    defaults = Settings.from_env(
        {
            "SCALEMESH_RUNNER": "ecs",
            "SCALEMESH_SECRET_KEY": "k" * 48,
            **{f"SCALEMESH_ECS_{name}": config[f"SCALEMESH_ECS_{name}"] for name in required},
        }
    )
    assert defaults.ecs is not None
    assert box["name"] == defaults.ecs.container
    assert box["essential"] is True
    assert box["logConfiguration"]["logDriver"] == "awslogs"
    assert set(box["logConfiguration"]["options"]) >= {
        "awslogs-group",
        "awslogs-region",
        "awslogs-stream-prefix",
    }
    # Root, with only what it takes to hand the project's commands to an unprivileged user
    # (builder/Dockerfile): change owners, switch ids, read and signal what they leave. Fargate
    # cannot add capabilities, so everything else Docker grants by default is dropped.
    assert box["user"] == "0:0"
    dropped = set(box["linuxParameters"]["capabilities"]["drop"])
    docker_defaults = {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
        "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }  # fmt: skip
    assert docker_defaults - dropped == {
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "KILL",
        "SETGID",
        "SETUID",
    }
    assert not box.get("environment"), "the runner passes the build spec as overrides"


@pytest.mark.usefixtures("aws")
def test_runner_starts_the_task_definition_as_written() -> None:
    ecs = boto3.client("ecs", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    config = configmap()
    registered = ecs.register_task_definition(**TASK_DEFINITION)["taskDefinition"]
    ecs.create_cluster(clusterName=config["SCALEMESH_ECS_CLUSTER"])
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # moto needs DNS hostnames for awsvpc tasks (LIBRARY-NOTES §0.14).
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="builds", Description="b", VpcId=vpc)["GroupId"]
    settings = Settings.from_env(
        {
            **config,
            "SCALEMESH_DATABASE_URL": "postgresql://scalemesh:pw@postgres:5432/scalemesh",
            "SCALEMESH_REDIS_URL": REDIS,
            "SCALEMESH_SECRET_KEY": "k" * 48,
            "SCALEMESH_ECS_SUBNETS": subnet,
            "SCALEMESH_ECS_SECURITY_GROUPS": group,
        }
    )
    assert settings.ecs is not None
    client = RecordingClient(ecs)
    spec = BuildSpec(
        deployment_id="dep-1",
        project_id=7,
        git_url="https://github.com/octo/site.git",
        sha="0123456789abcdef0123456789abcdef01234567",
        storage_url=configmap()["SCALEMESH_STORAGE_URL"],
    )

    handle = asyncio.run(EcsRunner(client, settings.ecs, REDIS).start(spec))

    (request,) = client.run_task_calls
    assert request["taskDefinition"] == TASK_DEFINITION["family"]
    assert request["cluster"] == config["SCALEMESH_ECS_CLUSTER"]
    assert request["launchType"] == "FARGATE"
    (override,) = request["overrides"]["containerOverrides"]
    assert override["name"] == TASK_DEFINITION["containerDefinitions"][0]["name"]
    assert request["networkConfiguration"] == {
        "awsvpcConfiguration": {
            "subnets": [subnet],
            "securityGroups": [group],
            "assignPublicIp": "DISABLED",
        }
    }
    (task,) = ecs.describe_tasks(cluster=request["cluster"], tasks=[handle.removeprefix("ecs:")])[
        "tasks"
    ]
    assert task["taskDefinitionArn"] == registered["taskDefinitionArn"]
    assert [c["name"] for c in task["containers"]] == [override["name"]]
    assert task["overrides"]["containerOverrides"][0]["name"] == override["name"]


@pytest.mark.usefixtures("aws")
def test_policies_are_valid_iam() -> None:
    iam = boto3.client("iam", region_name=REGION)
    for name in ("api-policy", "builder-task-role-policy", "proxy-policy"):
        document = (ECS / f"{name}.json").read_text()
        created = iam.create_policy(PolicyName=name, PolicyDocument=document)["Policy"]
        assert created["PolicyName"] == name
    role = iam.create_role(
        RoleName="scalemesh-builder-task",
        AssumeRolePolicyDocument=(ECS / "ecs-tasks-trust-policy.json").read_text(),
    )
    trust = role["Role"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}

    broken = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get"}]}
    with pytest.raises(iam.exceptions.MalformedPolicyDocumentException):
        iam.create_policy(PolicyName="broken", PolicyDocument=json.dumps(broken))


def test_api_policy_is_scoped_to_the_builder_family_cluster_roles_and_bucket() -> None:
    config = configmap()
    family = TASK_DEFINITION["family"]
    cluster = config["SCALEMESH_ECS_CLUSTER"]
    allowed = grants(API_POLICY)

    assert set(allowed) == {
        "ecs:RunTask",
        "ecs:TagResource",  # RunTask with tags needs it
        "ecs:DescribeTasks",
        "ecs:StopTask",
        "iam:PassRole",
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
    }
    assert allowed["ecs:RunTask"] == {f"arn:aws:ecs:REGION:ACCOUNT_ID:task-definition/{family}:*"}
    tasks = {f"arn:aws:ecs:REGION:ACCOUNT_ID:task/{cluster}/*"}
    for action in ("ecs:DescribeTasks", "ecs:StopTask", "ecs:TagResource"):
        assert allowed[action] == tasks, action
    assert allowed["iam:PassRole"] == {
        TASK_DEFINITION["taskRoleArn"],
        TASK_DEFINITION["executionRoleArn"],
    }
    assert allowed["s3:ListBucket"] == {f"arn:aws:s3:::{bucket()}"}
    assert allowed["s3:GetObject"] == {f"arn:aws:s3:::{bucket()}/*"}
    # The API writes only the log archive; deployment files come from the builder.
    assert allowed["s3:PutObject"] == {f"arn:aws:s3:::{bucket()}/{LOGS_ROOT}/*"}
    for statement in statements(API_POLICY):
        if statement["Action"] in ("ecs:RunTask", ["ecs:DescribeTasks", "ecs:StopTask"]):
            cluster_arn = statement["Condition"]["ArnEquals"]["ecs:cluster"]
            assert cluster_arn == f"arn:aws:ecs:REGION:ACCOUNT_ID:cluster/{cluster}"
        if statement["Action"] == "iam:PassRole":
            condition = statement["Condition"]["StringEquals"]
            assert condition["iam:PassedToService"] == "ecs-tasks.amazonaws.com"


def test_builder_task_role_may_only_write_deployment_outputs() -> None:
    allowed = grants(BUILDER_POLICY)

    # AbortMultipartUpload: a cancelled build cleans up its unfinished large-file uploads.
    assert set(allowed) == {"s3:PutObject", "s3:AbortMultipartUpload"}
    for resources in allowed.values():
        assert resources == {f"arn:aws:s3:::{bucket()}/{OUTPUTS_ROOT}/*"}


def test_proxy_policy_only_reads_deployment_outputs() -> None:
    allowed = grants(PROXY_POLICY)

    assert allowed == {
        "s3:ListBucket": {f"arn:aws:s3:::{bucket()}"},
        "s3:GetObject": {f"arn:aws:s3:::{bucket()}/{OUTPUTS_ROOT}/*"},
    }


def test_no_policy_grants_wildcards() -> None:
    for policy in (API_POLICY, BUILDER_POLICY, PROXY_POLICY):
        for action, resources in grants(policy).items():
            assert "*" not in action
            assert "*" not in resources
