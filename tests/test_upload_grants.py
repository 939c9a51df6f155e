"""Upload grants: one AssumeRole per build, with a session policy naming that build's prefix alone.

moto's STS hands out credentials but enforces no policy, so the request sent to it is recorded
and its session policy is evaluated here (`tests.support.iam`) together with the upload role's
own policy from deploy/ecs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from app.builds.grants import (
    NoUploadGrants,
    StsUploadGrants,
    UploadGrantError,
    session_policy,
    upload_grants_from_settings,
)
from app.settings import Settings
from builder.cache_keys import cache_key
from builder.spec import output_prefix
from tests.support.iam import allows, load, session_allows
from tests.support.ports import refused_port
from tests.support.s3_bucket import fake_aws

pytestmark = pytest.mark.anyio

ROLE = "arn:aws:iam::123456789012:role/scalemesh-build-upload"
DEPLOYMENT = str(uuid.uuid4())
UPLOAD_ROLE_POLICY = load("upload-role-policy.json")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recording:
    """A boto3 STS client that remembers each `assume_role` request before passing it on."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests: list[dict[str, Any]] = []
        self.closed = False

    def assume_role(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        response: dict[str, Any] = self.client.assume_role(**kwargs)
        return response

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def sts() -> Iterator[Recording]:
    with fake_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        trust = load("upload-role-trust-policy.json")
        iam.create_role(
            RoleName="scalemesh-build-upload",
            AssumeRolePolicyDocument=json.dumps(trust).replace("ACCOUNT_ID", "123456789012"),
        )
        yield Recording(boto3.client("sts", region_name="us-east-1"))


def key(project_id: int, deployment_id: str, name: str) -> str:
    return f"arn:aws:s3:::scalemesh-deployments/{output_prefix(project_id, deployment_id)}{name}"


def test_the_session_policy_lets_a_build_write_its_own_prefix_and_nothing_else() -> None:
    policy = session_policy("aws", "scalemesh-deployments", "", 7, DEPLOYMENT)
    other = str(uuid.uuid4())

    def may(action: str, resource: str) -> bool:
        return session_allows(UPLOAD_ROLE_POLICY, policy, action, resource)

    assert policy["Statement"][0]["Resource"] == key(7, DEPLOYMENT, "*")
    assert [statement["Sid"] for statement in policy["Statement"]] == [
        "UploadThisDeploymentOnly",
        "ReadThisProjectsBuildCaches",
    ]
    assert may("s3:PutObject", key(7, DEPLOYMENT, "index.html"))
    assert may("s3:PutObject", key(7, DEPLOYMENT, ".scalemesh/manifest.json"))
    assert may("s3:AbortMultipartUpload", key(7, DEPLOYMENT, "big.bin"))
    # Another deployment of the project, another project, a look-alike prefix, the log archive.
    assert not may("s3:PutObject", key(7, other, "index.html"))
    assert not may("s3:PutObject", key(8, DEPLOYMENT, "index.html"))
    assert not may("s3:PutObject", key(7, DEPLOYMENT + "x", "index.html"))
    assert not may("s3:PutObject", f"arn:aws:s3:::scalemesh-deployments/__logs/{DEPLOYMENT}")
    assert not may("s3:PutObject", f"arn:aws:s3:::another-bucket/__outputs/7/{DEPLOYMENT}/a")
    for action in ("s3:GetObject", "s3:DeleteObject", "s3:ListBucket", "s3:PutObjectAcl"):
        assert not may(action, key(7, DEPLOYMENT, "index.html")), action
    # Without the session policy the role would reach every site: the policy is the fence.
    assert allows(UPLOAD_ROLE_POLICY, "s3:PutObject", key(8, other, "index.html"))


def test_the_session_policy_follows_the_storage_prefix_and_partition() -> None:
    policy = session_policy("aws-cn", "deployments", "prod/", 7, DEPLOYMENT)

    statement, caches = policy["Statement"]
    assert statement["Resource"] == f"arn:aws-cn:s3:::deployments/prod/__outputs/7/{DEPLOYMENT}/*"
    assert statement["Action"] == ["s3:PutObject", "s3:AbortMultipartUpload"]
    assert caches["Resource"] == "arn:aws-cn:s3:::deployments/prod/__cache/7/*"
    assert caches["Action"] == ["s3:GetObject"]


def cache_arn(project_id: int, branch: str) -> str:
    return f"arn:aws:s3:::scalemesh-deployments/{cache_key(project_id, branch)}"


def test_a_branch_build_reads_its_projects_caches_and_writes_its_own_branch_key_only() -> None:
    policy = session_policy("aws", "scalemesh-deployments", "", 7, DEPLOYMENT, "feature/x")

    def may(action: str, resource: str) -> bool:
        return session_allows(UPLOAD_ROLE_POLICY, policy, action, resource)

    own, production = cache_arn(7, "feature/x"), cache_arn(7, "main")
    assert may("s3:GetObject", own)
    assert may("s3:GetObject", production)  # a new branch starts from production's
    assert may("s3:PutObject", own)
    assert may("s3:AbortMultipartUpload", own)
    # Never another branch's cache (production's included), nor another project's.
    assert not may("s3:PutObject", production)
    assert not may("s3:PutObject", own + ".tmp")
    assert not may("s3:GetObject", cache_arn(8, "main"))
    assert not may("s3:PutObject", cache_arn(8, "feature/x"))
    for action in ("s3:DeleteObject", "s3:ListBucket"):
        assert not may(action, own), action
    # The deployment's outputs stay write-only.
    assert not may("s3:GetObject", key(7, DEPLOYMENT, "index.html"))


def test_a_forks_build_reads_the_projects_caches_and_writes_none() -> None:
    policy = session_policy("aws", "scalemesh-deployments", "", 7, DEPLOYMENT, None)

    def may(action: str, resource: str) -> bool:
        return session_allows(UPLOAD_ROLE_POLICY, policy, action, resource)

    assert may("s3:GetObject", cache_arn(7, "main"))
    assert may("s3:GetObject", cache_arn(7, "release/2.x"))  # its pull request's base branch
    for branch in ("main", "feature/x", ""):
        assert not may("s3:PutObject", cache_arn(7, branch))
        assert not may("s3:AbortMultipartUpload", cache_arn(7, branch))


async def test_the_grant_names_the_branch_whose_cache_it_may_write(sts: Recording) -> None:
    grants = StsUploadGrants(sts, ROLE, "scalemesh-deployments", "")

    await grants.grant(7, DEPLOYMENT, 900, "main")

    (request,) = sts.requests
    assert json.loads(request["Policy"]) == session_policy(
        "aws", "scalemesh-deployments", "", 7, DEPLOYMENT, "main"
    )
    assert json.loads(request["Policy"])["Statement"][-1]["Resource"] == cache_arn(7, "main")


@pytest.mark.parametrize(("asked", "sent"), [(960, 960), (60, 900), (43_200, 3600)])
async def test_a_grant_is_one_assume_role_with_the_builds_session_policy(
    sts: Recording, asked: int, sent: int
) -> None:
    grants = StsUploadGrants(sts, ROLE, "scalemesh-deployments", "prod/")

    credentials = await grants.grant(7, DEPLOYMENT, asked)

    (request,) = sts.requests
    assert request["RoleArn"] == ROLE
    assert request["RoleSessionName"] == f"scalemesh-build-{DEPLOYMENT}"
    assert request["DurationSeconds"] == sent
    assert json.loads(request["Policy"]) == session_policy(
        "aws", "scalemesh-deployments", "prod/", 7, DEPLOYMENT
    )
    assert json.loads(request["Policy"])["Statement"][0]["Resource"] == (
        f"arn:aws:s3:::scalemesh-deployments/prod/__outputs/7/{DEPLOYMENT}/*"
    )
    assert credentials is not None
    assert credentials.access_key_id.startswith("ASIA")
    assert credentials.secret_access_key
    assert credentials.session_token
    assert credentials.expiration.startswith("20")
    await grants.aclose()
    assert not sts.closed  # borrowed


async def test_sts_errors_become_grant_errors() -> None:
    client = boto3.client("sts", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_client_error("assume_role", "AccessDenied", "not authorized to assume")
        grants = StsUploadGrants(client, ROLE, "bucket", "", owns_client=True)

        with pytest.raises(UploadGrantError, match="AccessDenied: not authorized to assume"):
            await grants.grant(7, DEPLOYMENT, 900)
    await grants.aclose()


async def test_an_unreachable_sts_is_a_grant_error() -> None:
    with refused_port() as port:
        client = boto3.client(
            "sts",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{port}",
            config=Config(retries={"max_attempts": 0}),
        )
        grants = StsUploadGrants(client, ROLE, "bucket", "", owns_client=True)

        with pytest.raises(UploadGrantError, match="Could not connect"):
            await grants.grant(7, DEPLOYMENT, 900)
    await grants.aclose()


ECS_ENV = {
    "SCALEMESH_RUNNER": "ecs",
    "SCALEMESH_ECS_CLUSTER": "builds",
    "SCALEMESH_ECS_TASK_DEFINITION": "builder",
    "SCALEMESH_ECS_SUBNETS": "subnet-1",
    "SCALEMESH_ECS_SECURITY_GROUPS": "sg-1",
    "SCALEMESH_ECS_UPLOAD_ROLE_ARN": ROLE,
}


async def test_grants_are_made_only_for_ecs_builds_on_s3(
    make_settings: Callable[..., Settings],
) -> None:
    local = upload_grants_from_settings(make_settings())
    ecs_on_disk = upload_grants_from_settings(make_settings(**ECS_ENV))
    on_s3 = make_settings(**ECS_ENV, SCALEMESH_STORAGE_URL="s3://deployments/prod")
    made = upload_grants_from_settings(on_s3)
    client = Recording(None)
    borrowing = upload_grants_from_settings(on_s3, client)

    for none in (local, ecs_on_disk):
        assert isinstance(none, NoUploadGrants)
        assert await none.grant(7, DEPLOYMENT, 900) is None
        await none.aclose()
    assert isinstance(made, StsUploadGrants)
    await made.aclose()  # closes the boto3 client it made
    assert isinstance(borrowing, StsUploadGrants)
    await borrowing.aclose()
    assert not client.closed


def test_a_build_reaches_only_the_caches_of_its_projects_generation() -> None:
    # An earlier project with this id (SQLite gives it again) kept its caches without one.
    policy = session_policy("aws", "scalemesh-deployments", "", 7, DEPLOYMENT, "main", "2")

    def may(action: str, key: str) -> bool:
        arn = f"arn:aws:s3:::scalemesh-deployments/{key}"
        return session_allows(UPLOAD_ROLE_POLICY, policy, action, arn)

    own = cache_key(7, "main", "2")
    assert may("s3:GetObject", own)
    assert may("s3:PutObject", own)
    assert may("s3:GetObject", cache_key(7, "feature/x", "2"))
    for earlier in (cache_key(7, "main"), cache_key(7, "main", "1")):
        assert not may("s3:GetObject", earlier), earlier
        assert not may("s3:PutObject", earlier), earlier
