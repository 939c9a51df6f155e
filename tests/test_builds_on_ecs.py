"""A build on ECS end to end, against moto: the task gets only its token, the spec comes from the
API once with upload credentials from STS, and the token dies with the build."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from app.asgi import build_token_ttl, create_app
from app.builds.tokens import BuildTokens
from app.runners.ecs import EcsRunner
from app.settings import Settings
from builder.remote import TOKEN_VARIABLE
from builder.spec import BuildSpec
from tests.support.api import Client, bearer, sign_up
from tests.support.deploying import deploy
from tests.support.deployments import FakeResolver, tick
from tests.support.ecs import Accepting, builds_cluster
from tests.support.s3_bucket import fake_aws

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/scalemesh-build-upload"
SECRET_VALUE = "k-1234567890-secret"


class Recording(Accepting):
    """moto's ECS, with each `run_task` request kept."""

    def __init__(self, client: Any) -> None:
        super().__init__()
        self.client = client
        self.started: list[str] = []

    def run_task(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        response: dict[str, Any] = self.client.run_task(**kwargs)
        self.started += [task["taskArn"] for task in response["tasks"]]
        return response

    def describe_tasks(self, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = self.client.describe_tasks(**kwargs)
        return response

    def stop_task(self, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = self.client.stop_task(**kwargs)
        return response


@pytest.fixture
def aws_settings(
    make_settings: Callable[..., Settings], database_url: str
) -> Iterator[tuple[Settings, Recording]]:
    with fake_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket="deployments")
        ecs, subnet, group = builds_cluster(REGION)
        settings = make_settings(
            SCALEMESH_DATABASE_URL=database_url,
            SCALEMESH_STORAGE_URL="s3://deployments/prod",
            SCALEMESH_RUNNER="ecs",
            SCALEMESH_ECS_CLUSTER="builds",
            SCALEMESH_ECS_TASK_DEFINITION="builder",
            SCALEMESH_ECS_SUBNETS=subnet,
            SCALEMESH_ECS_SECURITY_GROUPS=group,
            SCALEMESH_ECS_UPLOAD_ROLE_ARN=ROLE,
        )
        yield settings, Recording(ecs)


def test_an_ecs_build_gets_its_token_then_its_spec_once_then_nothing(
    aws_settings: tuple[Settings, Recording],
) -> None:
    settings, ecs = aws_settings
    assert settings.ecs is not None
    runner = EcsRunner(ecs, settings.ecs, BuildTokens(), build_token_ttl(settings))
    app = create_app(settings, runner=runner, ref_resolver=FakeResolver(), reconcile=False)
    with Client(app) as client:
        user = sign_up(client)
        created = client.post(
            "/project",
            json={"name": "web", "repo": "octo/web", "env": {"API_KEY": SECRET_VALUE}},
            headers=bearer(user),
        )
        assert created.status_code == 201, created.text
        deployment_id = str(deploy(client, user)["id"])
        tick(client)

        (request,) = ecs.requests
        (override,) = request["overrides"]["containerOverrides"]
        (variable,) = override["environment"]
        assert variable["name"] == TOKEN_VARIABLE
        token = variable["value"]
        assert token.startswith(f"{deployment_id}.")
        assert SECRET_VALUE not in json.dumps(request)
        assert "redis" not in json.dumps(request).lower()
        # Nothing of the API's own: its AWS credentials, its secret key.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert os.environ[name] not in json.dumps(request)
        assert settings.secret_key.reveal() not in json.dumps(request)

        fetched = client.post(f"/internal/builds/{deployment_id}/spec", headers=bearer(token))
        again = client.post(f"/internal/builds/{deployment_id}/spec", headers=bearer(token))

        assert fetched.status_code == 200, fetched.text
        spec = BuildSpec.from_json(fetched.json())
        assert spec.env == {"API_KEY": SECRET_VALUE}
        assert spec.storage_url == "s3://deployments/prod"
        assert spec.storage_credentials is not None
        assert spec.storage_credentials.access_key_id.startswith("ASIA")
        spec_text = json.dumps(fetched.json())
        assert os.environ["AWS_SECRET_ACCESS_KEY"] not in spec_text
        assert settings.secret_key.reveal() not in spec_text
        assert again.status_code == 409

        cancelled = client.post(f"/deployments/{deployment_id}/cancel", headers=bearer(user))
        assert cancelled.status_code == 200, cancelled.text
        late = client.post(
            f"/internal/builds/{deployment_id}/events",
            content=b'{"type": "line", "ts": 1, "stream": "stdout", "text": "x"}\n',
            headers=bearer(token),
        )
        assert late.status_code == 401
        (task,) = ecs.client.describe_tasks(cluster="builds", tasks=ecs.started)["tasks"]
        assert task["lastStatus"] == "STOPPED"  # the cancelled build's task was stopped
