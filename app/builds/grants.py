"""Upload grants: short-lived S3 credentials that may write one deployment's prefix, read its
project's build caches and write its own branch's, nothing else.

`StsUploadGrants` assumes the upload role (`SCALEMESH_ECS_UPLOAD_ROLE_ARN`) with an inline
session policy naming only `<storage prefix>__outputs/<project>/<deployment>/*`, reads of
`__cache/<project>/<generation>/*` (`BuildSpec.cache_generation`) and writes of the one cache
key of the build's branch (none for a fork's build or a tag: `builder.build_cache`): the
session's rights are what both the role and that policy allow. boto3 is synchronous, so each
call runs in a worker thread; botocore's errors stop here as `UploadGrantError`.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Protocol

import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError

from app.settings import Settings
from builder.cache_keys import cache_key, cache_prefix
from builder.spec import StorageCredentials, output_prefix

MIN_SECONDS = 900
"""STS's shortest session."""
MAX_SECONDS = 3600
"""The longest a chained role session may last (the API's own credentials come from a role)."""
UPLOAD_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
"""Write objects (multipart uploads included), and abandon a cancelled upload's parts."""
CACHE_READ_ACTIONS = ("s3:GetObject",)


class UploadGrantError(RuntimeError):
    """STS would not hand out upload credentials (throttled, denied, unreachable)."""


class UploadGrants(Protocol):
    async def grant(
        self,
        project_id: int,
        deployment_id: str,
        seconds: int,
        cache_branch: str | None = None,
        cache_generation: str = "",
    ) -> StorageCredentials | None:
        """Credentials for one deployment's upload (and its branch's build cache, unless
        `cache_branch` is None), or None: the builder uses its own. The caches are those of the
        project's `cache_generation` (`BuildSpec.cache_generation`)."""

    async def aclose(self) -> None: ...


class NoUploadGrants:
    """Local storage (or the local runner): the builder writes with what it has."""

    async def grant(
        self,
        project_id: int,
        deployment_id: str,
        seconds: int,
        cache_branch: str | None = None,
        cache_generation: str = "",
    ) -> StorageCredentials | None:
        return None

    async def aclose(self) -> None:
        return None


class StsClient(Protocol):
    """The part of a boto3 STS client used here."""

    def assume_role(self, **kwargs: Any) -> dict[str, Any]: ...

    def close(self) -> None: ...


def session_policy(
    partition: str,
    bucket: str,
    storage_prefix: str,
    project_id: int,
    deployment_id: str,
    cache_branch: str | None = None,
    cache_generation: str = "",
) -> dict[str, Any]:
    """The inline policy that narrows the upload role to this deployment's own prefix, reads
    of its project's build caches (of its `cache_generation`) and, with a `cache_branch`,
    writes of that branch's cache."""
    arn = f"arn:{partition}:s3:::{bucket}/{storage_prefix}"
    caches = cache_prefix(project_id, cache_generation)

    def allow(sid: str, actions: tuple[str, ...], resource: str) -> dict[str, Any]:
        return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": arn + resource}

    statements = [
        allow(
            "UploadThisDeploymentOnly",
            UPLOAD_ACTIONS,
            f"{output_prefix(project_id, deployment_id)}*",
        ),
        allow("ReadThisProjectsBuildCaches", CACHE_READ_ACTIONS, f"{caches}*"),
    ]
    if cache_branch is not None:
        key = cache_key(project_id, cache_branch, cache_generation)
        statements.append(allow("WriteThisBranchsBuildCache", UPLOAD_ACTIONS, key))
    return {"Version": "2012-10-17", "Statement": statements}


def session_seconds(seconds: int) -> int:
    return max(MIN_SECONDS, min(MAX_SECONDS, seconds))


class StsUploadGrants:
    """Assumes the upload role once per build, with a session policy for that build alone."""

    def __init__(
        self,
        client: StsClient,
        role_arn: str,
        bucket: str,
        storage_prefix: str,
        *,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._role_arn = role_arn
        self._partition = role_arn.split(":")[1]
        self._bucket = bucket
        self._storage_prefix = storage_prefix
        self._owns_client = owns_client

    async def grant(
        self,
        project_id: int,
        deployment_id: str,
        seconds: int,
        cache_branch: str | None = None,
        cache_generation: str = "",
    ) -> StorageCredentials | None:
        policy = session_policy(
            self._partition,
            self._bucket,
            self._storage_prefix,
            project_id,
            deployment_id,
            cache_branch,
            cache_generation,
        )
        call = functools.partial(
            self._client.assume_role,
            RoleArn=self._role_arn,
            # CloudTrail shows which build each upload came from.
            RoleSessionName=f"scalemesh-build-{deployment_id}"[:64],
            DurationSeconds=session_seconds(seconds),
            Policy=json.dumps(policy, separators=(",", ":")),
        )
        try:
            response = await anyio.to_thread.run_sync(call)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise UploadGrantError(
                f"STS would not grant upload credentials: {error.get('Code')}: "
                f"{error.get('Message')}"
            ) from None
        except BotoCoreError as exc:
            raise UploadGrantError(f"STS would not grant upload credentials: {exc}") from None
        credentials = response["Credentials"]
        return StorageCredentials(
            access_key_id=credentials["AccessKeyId"],
            secret_access_key=credentials["SecretAccessKey"],
            session_token=credentials["SessionToken"],
            expiration=credentials["Expiration"].isoformat(),
        )

    async def aclose(self) -> None:
        if self._owns_client:
            self._client.close()


def upload_grants_from_settings(
    settings: Settings, client: StsClient | None = None
) -> UploadGrants:
    """STS grants when ECS builders upload to S3; otherwise none (the builder's own rights)."""
    if settings.ecs is None or settings.storage.scheme != "s3":
        return NoUploadGrants()
    owns_client = client is None
    if client is None:
        import boto3
        from botocore.config import Config

        # Bounded timeouts: a hung STS call must not hold a worker thread (or a builder) long.
        config = Config(connect_timeout=10, read_timeout=30, retries={"mode": "standard"})
        client = boto3.client("sts", config=config)
    return StsUploadGrants(
        client,
        settings.ecs.upload_role_arn,
        settings.storage.bucket,
        settings.storage.prefix,
        owns_client=owns_client,
    )
