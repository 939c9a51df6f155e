"""deploy/ecs: the builder's task definition runs under the real `EcsRunner`, least privilege.

moto registers the task definition exactly as written and checks the IAM policy grammar; the
runner's `run_task` call is recorded and compared with the task definition and the settings
from deploy/k8s. The builder task has no role at all: it reaches the API with its bootstrap
token, and uploads with credentials the API assumes for it from the upload role.
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

from app.runners.ecs import EcsRunner
from app.settings import Settings
from builder.cache_keys import CACHE_ROOT
from builder.remote import API_URL_VARIABLE, TOKEN_VARIABLE
from builder.spec import LOGS_ROOT, OUTPUTS_ROOT, BuildSpec
from tests.support.ecs import TTL, FakeTokens
from tests.support.iam import load
from tests.support.k8s import configmap
from tests.support.k8s import load as load_k8s
from tests.support.s3_bucket import fake_aws

ROOT = Path(__file__).resolve().parent.parent
ECS = ROOT / "deploy" / "ecs"
REGION = "us-east-1"
ACCOUNT = "123456789012"

TASK_DEFINITION = load("builder-task-definition.json")
API_POLICY = load("api-policy.json")
UPLOAD_POLICY = load("upload-role-policy.json")
UPLOAD_TRUST = load("upload-role-trust-policy.json")
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
    with fake_aws():
        yield


def test_task_definition_is_fargate_awsvpc_with_logs_and_the_configured_container() -> None:
    config = configmap()
    (box,) = TASK_DEFINITION["containerDefinitions"]

    assert TASK_DEFINITION["requiresCompatibilities"] == ["FARGATE"]
    assert TASK_DEFINITION["networkMode"] == "awsvpc"
    assert TASK_DEFINITION["family"] == config["SCALEMESH_ECS_TASK_DEFINITION"]
    assert box["name"] == config["SCALEMESH_ECS_CONTAINER"]
    # ... which is also the name the settings assume when SCALEMESH_ECS_CONTAINER is unset.
    required = ("CLUSTER", "TASK_DEFINITION", "SUBNETS", "SECURITY_GROUPS", "UPLOAD_ROLE_ARN")
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
    # The API's address is the task definition's; the build token alone comes as an override.
    assert box["environment"] == [
        {"name": API_URL_VARIABLE, "value": config["SCALEMESH_PUBLIC_URL"]}
    ]
    assert config["SCALEMESH_PUBLIC_URL"].startswith("https://")


def test_the_builder_task_has_no_aws_identity() -> None:
    # No task role: nothing in the task (the build included) holds AWS credentials; uploads
    # use the per-build grant that arrives with the spec. The execution role only pulls the
    # image and writes the task's own log, on ECS's side.
    assert "taskRoleArn" not in TASK_DEFINITION
    assert TASK_DEFINITION["executionRoleArn"].endswith(":role/scalemesh-builder-execution")
    assert not (ECS / "builder-task-role-policy.json").exists()


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

    handle = asyncio.run(EcsRunner(client, settings.ecs, FakeTokens(), TTL).start(spec))

    (request,) = client.run_task_calls
    assert request["taskDefinition"] == TASK_DEFINITION["family"]
    assert request["cluster"] == config["SCALEMESH_ECS_CLUSTER"]
    assert request["launchType"] == "FARGATE"
    (override,) = request["overrides"]["containerOverrides"]
    assert override["name"] == TASK_DEFINITION["containerDefinitions"][0]["name"]
    assert [item["name"] for item in override["environment"]] == [TOKEN_VARIABLE]
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


def real(document: dict[str, Any]) -> str:
    return json.dumps(document).replace("ACCOUNT_ID", ACCOUNT).replace("REGION", REGION)


@pytest.mark.usefixtures("aws")
def test_policies_are_valid_iam() -> None:
    iam = boto3.client("iam", region_name=REGION)
    for name in ("api-policy", "upload-role-policy", "proxy-policy"):
        document = (ECS / f"{name}.json").read_text()
        created = iam.create_policy(PolicyName=name, PolicyDocument=document)["Policy"]
        assert created["PolicyName"] == name
    role = iam.create_role(
        RoleName="scalemesh-builder-execution",
        AssumeRolePolicyDocument=(ECS / "ecs-tasks-trust-policy.json").read_text(),
    )
    trust = role["Role"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    upload = iam.create_role(
        RoleName="scalemesh-build-upload", AssumeRolePolicyDocument=real(UPLOAD_TRUST)
    )["Role"]
    assert upload["Arn"] == real_arn(configmap()["SCALEMESH_ECS_UPLOAD_ROLE_ARN"])

    broken = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get"}]}
    with pytest.raises(iam.exceptions.MalformedPolicyDocumentException):
        iam.create_policy(PolicyName="broken", PolicyDocument=json.dumps(broken))


def real_arn(arn: str) -> str:
    return arn.replace("ACCOUNT_ID", ACCOUNT)


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
        "sts:AssumeRole",
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
    }
    assert allowed["ecs:RunTask"] == {f"arn:aws:ecs:REGION:ACCOUNT_ID:task-definition/{family}:*"}
    tasks = {f"arn:aws:ecs:REGION:ACCOUNT_ID:task/{cluster}/*"}
    for action in ("ecs:DescribeTasks", "ecs:StopTask", "ecs:TagResource"):
        assert allowed[action] == tasks, action
    # The builder's task has no role to pass: only the execution role that starts it.
    assert allowed["iam:PassRole"] == {TASK_DEFINITION["executionRoleArn"]}
    # The one role the API may become, to hand each build its own upload grant.
    assert allowed["sts:AssumeRole"] == {config["SCALEMESH_ECS_UPLOAD_ROLE_ARN"]}
    assert allowed["s3:ListBucket"] == {f"arn:aws:s3:::{bucket()}"}
    assert allowed["s3:GetObject"] == {f"arn:aws:s3:::{bucket()}/*"}
    # The API writes only the log archive; deployment files come from the builds' grants.
    assert allowed["s3:PutObject"] == {f"arn:aws:s3:::{bucket()}/{LOGS_ROOT}/*"}
    for statement in statements(API_POLICY):
        if statement["Action"] in ("ecs:RunTask", ["ecs:DescribeTasks", "ecs:StopTask"]):
            cluster_arn = statement["Condition"]["ArnEquals"]["ecs:cluster"]
            assert cluster_arn == f"arn:aws:ecs:REGION:ACCOUNT_ID:cluster/{cluster}"
        if statement["Action"] == "iam:PassRole":
            condition = statement["Condition"]["StringEquals"]
            assert condition["iam:PassedToService"] == "ecs-tasks.amazonaws.com"


def test_only_the_api_may_assume_the_upload_role_which_may_only_write_outputs_and_caches() -> None:
    (trust,) = UPLOAD_TRUST["Statement"]
    api_role = load_k8s("api-serviceaccount.yaml")["metadata"]["annotations"][
        "eks.amazonaws.com/role-arn"
    ]
    assert trust == {"Effect": "Allow", "Principal": {"AWS": api_role}, "Action": "sts:AssumeRole"}

    allowed = grants(UPLOAD_POLICY)
    # AbortMultipartUpload: a cancelled build cleans up its unfinished large-file uploads. Each
    # build's session policy narrows this to its own `__outputs/<project>/<deployment>/*`, reads
    # of its project's `__cache/<project>/*` and writes of its branch's cache key alone.
    outputs, caches = (f"arn:aws:s3:::{bucket()}/{root}/*" for root in (OUTPUTS_ROOT, CACHE_ROOT))
    assert allowed == {
        "s3:PutObject": {outputs, caches},
        "s3:AbortMultipartUpload": {outputs, caches},
        "s3:GetObject": {caches},
    }


def test_proxy_policy_only_reads_deployment_outputs() -> None:
    allowed = grants(PROXY_POLICY)

    assert allowed == {
        "s3:ListBucket": {f"arn:aws:s3:::{bucket()}"},
        "s3:GetObject": {f"arn:aws:s3:::{bucket()}/{OUTPUTS_ROOT}/*"},
    }


def test_no_policy_grants_wildcards() -> None:
    for policy in (API_POLICY, UPLOAD_POLICY, PROXY_POLICY):
        for action, resources in grants(policy).items():
            assert "*" not in action
            assert "*" not in resources
