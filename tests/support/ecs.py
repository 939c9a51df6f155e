"""The ECS runner's doubles: a build spec, a token issuer that remembers, an unreachable client,
and moto's cluster for builds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
from botocore.exceptions import EndpointConnectionError

from builder.spec import BuildSpec
from tests.support import runners

CLONE_TOKEN = runners.TOKEN
SECRET_VALUE = "abc123-secret-value"
BUILD_TOKEN = "dep-1.bootstrap-secret"
TTL = timedelta(minutes=16)


def make_spec(deployment_id: str = "dep-1", **env: str) -> BuildSpec:
    """A spec full of secrets, none of which may reach ECS."""
    return runners.make_spec(deployment_id, **{"API_KEY": SECRET_VALUE, **env})


class FakeTokens:
    """Issues `<deployment>.bootstrap-secret` and remembers each issue."""

    def __init__(self) -> None:
        self.issued: list[tuple[str, timedelta]] = []

    async def issue(self, deployment_id: str, ttl: timedelta) -> str:
        self.issued.append((deployment_id, ttl))
        return f"{deployment_id}.bootstrap-secret"


class Unreachable:
    """An ECS client whose endpoint cannot be reached."""

    def __init__(self) -> None:
        self.closed = False

    def _fail(self, **kwargs: Any) -> dict[str, Any]:
        raise EndpointConnectionError(endpoint_url="https://ecs.us-east-1.amazonaws.com/")

    run_task = describe_tasks = stop_task = _fail

    def close(self) -> None:
        self.closed = True


class Accepting(Unreachable):
    """An ECS client that starts every task asked for, and remembers each `run_task` request."""

    ARN = "arn:aws:ecs:us-east-1:123456789012:task/builds/0123456789abcdef"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []

    def run_task(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        return {"tasks": [{"taskArn": self.ARN}], "failures": []}


def builds_cluster(region: str = "us-east-1") -> tuple[Any, str, str]:
    """Inside `mock_aws`: the `builds` cluster with the `builder` task family, and a subnet and
    security group for its tasks. Returns the ECS client, the subnet id and the group id."""
    ecs = boto3.client("ecs", region_name=region)
    ec2 = boto3.client("ec2", region_name=region)
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
    group = ec2.create_security_group(GroupName="builds", Description="b", VpcId=vpc)["GroupId"]
    return ecs, subnet, group
