"""Run each build as an AWS ECS (Fargate) task, handed nothing but its bootstrap token.

The task's overrides carry one variable, `SCALEMESH_BUILD_TOKEN`: DescribeTasks and CloudTrail
show overrides to anyone who may read them, so the spec (clone token, env values) is fetched by
the builder itself from the API with that token, once (`app.builds`), at the URL its task
definition names. boto3 is synchronous, so every call runs in a worker thread. botocore's
exceptions stop here: callers only ever see `RunnerError`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError

from app.runners.api import CANCELLED_REASON, RunnerError, RunState, RunStatus
from app.settings_parts import EcsSettings
from builder.remote import TOKEN_VARIABLE
from builder.spec import BuildSpec, Masker

log = logging.getLogger(__name__)

HANDLE_KIND = "ecs"
STARTED_BY = "scalemesh"

_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServerException",
        "ServiceUnavailableException",
        "InternalFailure",
    }
)
_PERMANENT_FAILURES = frozenset({"ATTRIBUTE", "LOCATION"})
"""`RunTask` failures no retry can fix: a placement constraint or the subnets are wrong.
Every other failure (capacity, `RESOURCE:*`, `AGENT`, limits) may clear up in seconds."""
_SELF_EXIT = "Essential container in task exited"
"""ECS's stopped reason when the builder ended by itself: it adds nothing to the exit code."""


class EcsClient(Protocol):
    """The part of a boto3 ECS client this runner uses."""

    def run_task(self, **kwargs: Any) -> dict[str, Any]: ...

    def describe_tasks(self, **kwargs: Any) -> dict[str, Any]: ...

    def stop_task(self, **kwargs: Any) -> dict[str, Any]: ...

    def close(self) -> None: ...


class TokenIssuer(Protocol):
    """Issues a build's bootstrap token (`app.builds.tokens.BuildTokens`)."""

    async def issue(self, deployment_id: str, ttl: timedelta) -> str: ...


class EcsRunner:
    """Starts one Fargate task per build; handles are `ecs:<task arn>`."""

    shared_handles = True
    """Every replica reaches every task through ECS."""

    def __init__(
        self,
        client: EcsClient,
        settings: EcsSettings,
        tokens: TokenIssuer,
        token_ttl: timedelta,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        attempts: int = 4,
        *,
        owns_client: bool = False,
    ) -> None:
        self._client = client
        self._settings = settings
        self._tokens = tokens
        self._token_ttl = token_ttl
        self._sleep = sleep
        self._attempts = attempts
        self._owns_client = owns_client

    async def start(self, spec: BuildSpec) -> str:
        """Start the build's task. Only the deployment's ids are read from `spec`: the builder
        fetches its own, fresh, with the token."""
        token = await self._tokens.issue(spec.deployment_id, self._token_ttl)
        masker = Masker((), always=[token])
        overrides = {
            "containerOverrides": [
                {
                    "name": self._settings.container,
                    "environment": [{"name": TOKEN_VARIABLE, "value": token}],
                }
            ]
        }
        request: dict[str, Any] = {
            "cluster": self._settings.cluster,
            "taskDefinition": self._settings.task_definition,
            "launchType": "FARGATE",
            "count": 1,
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": list(self._settings.subnets),
                    "securityGroups": list(self._settings.security_groups),
                    "assignPublicIp": "ENABLED" if self._settings.assign_public_ip else "DISABLED",
                }
            },
            "overrides": overrides,
            "startedBy": STARTED_BY,
            "tags": [
                {"key": "scalemesh:deployment", "value": spec.deployment_id},
                {"key": "scalemesh:project", "value": str(spec.project_id)},
            ],
            "enableExecuteCommand": False,
            "propagateTags": "TASK_DEFINITION",
            # The same token on every retry: a request that did reach ECS before its answer
            # was lost must not start a second task.
            "clientToken": uuid.uuid4().hex,
        }
        reason = ""
        for attempt in range(self._attempts):
            if attempt:
                log.warning(
                    "ECS could not start the build; retrying",
                    extra={
                        "deployment_id": spec.deployment_id,
                        "attempt": attempt,
                        "error": reason,
                    },
                )
                await self._sleep(2.0 ** (attempt - 1))
            try:
                response = await self._call(self._client.run_task, **request)
            except ClientError as exc:
                reason = masker.mask(_client_error(exc))
                if not _retryable(exc):
                    # `from None`: the request, the token included, may be echoed in the error.
                    raise RunnerError(f"ECS could not start the build: {reason}") from None
                continue
            except BotoCoreError as exc:
                raise RunnerError(
                    f"ECS could not start the build: {masker.mask(str(exc))}"
                ) from None
            tasks = response.get("tasks") or []
            if tasks:
                handle = f"{HANDLE_KIND}:{tasks[0]['taskArn']}"
                log.info(
                    "build task started",
                    extra={"deployment_id": spec.deployment_id, "handle": handle},
                )
                return handle
            failures = response.get("failures") or []
            reason = "; ".join(_failure(f) for f in failures) or "ECS started no task"
            if any(f.get("reason") in _PERMANENT_FAILURES for f in failures):
                break
        raise RunnerError(f"ECS could not start the build: {reason}")

    async def poll(self, handle: str) -> RunState:
        arn = _arn(handle)
        if arn is None:
            return RunState(RunStatus.GONE, reason="not an ECS build")
        try:
            response = await self._call(
                self._client.describe_tasks, cluster=self._settings.cluster, tasks=[arn]
            )
        except (ClientError, BotoCoreError) as exc:
            raise RunnerError(f"ECS could not describe the build task: {_error(exc)}") from exc
        tasks = response.get("tasks") or []
        if not tasks:
            failures = response.get("failures") or []
            if any(f.get("reason") != "MISSING" for f in failures):
                reasons = "; ".join(_failure(f) for f in failures)
                raise RunnerError(f"ECS could not describe the build task: {reasons}")
            # ECS forgets stopped tasks after about an hour.
            return RunState(RunStatus.GONE, reason="ECS has no record of the build task")
        task = tasks[0]
        if task.get("lastStatus") != "STOPPED":
            return RunState(RunStatus.RUNNING)
        return _stopped_state(task, self._settings.container)

    async def cancel(self, handle: str) -> None:
        arn = _arn(handle)
        if arn is None:
            return
        try:
            await self._call(
                self._client.stop_task,
                cluster=self._settings.cluster,
                task=arn,
                reason=CANCELLED_REASON,
            )
        except ClientError as exc:
            # Stopping a stopped task succeeds; one ECS has forgotten is gone already.
            if _code(exc) == "InvalidParameterException" and "not found" in _message(exc).lower():
                return
            raise RunnerError(f"ECS could not stop the build task: {_error(exc)}") from exc
        except BotoCoreError as exc:
            raise RunnerError(f"ECS could not stop the build task: {_error(exc)}") from exc
        log.info("build task stopped", extra={"handle": handle})

    async def aclose(self) -> None:
        if self._owns_client:
            self._client.close()

    async def _call(self, method: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(functools.partial(method, **kwargs))


def _arn(handle: str) -> str | None:
    kind, _, arn = handle.partition(":")
    return arn if kind == HANDLE_KIND and arn else None


def _stopped_state(task: dict[str, Any], container_name: str) -> RunState:
    container = next(
        (c for c in task.get("containers") or [] if c.get("name") == container_name), None
    )
    if container is None:
        return RunState(
            RunStatus.FAILED, reason=f"the build task has no container named {container_name!r}"
        )
    exit_code: int | None = container.get("exitCode")
    stopped_reason = task.get("stoppedReason") or ""
    detail = container.get("reason") or ("" if stopped_reason == _SELF_EXIT else stopped_reason)
    # A task stopped from outside (cancelled, Spot reclaimed) did not finish its build,
    # whatever its exit code says. moto sets no stopCode, hence the reason check too.
    stopped_from_outside = (
        task.get("stopCode", "EssentialContainerExited") != "EssentialContainerExited"
        or stopped_reason == CANCELLED_REASON
    )
    if exit_code == 0 and not stopped_from_outside:
        return RunState(RunStatus.SUCCEEDED, exit_code=0)
    if exit_code is None or stopped_from_outside:
        return RunState(
            RunStatus.FAILED,
            exit_code=exit_code,
            reason=detail or "the build task stopped before the builder finished",
        )
    reason = f"builder exited with code {exit_code}" + (f": {detail}" if detail else "")
    return RunState(RunStatus.FAILED, exit_code=exit_code, reason=reason)


def _failure(failure: dict[str, Any]) -> str:
    reason = str(failure.get("reason") or "unknown")
    detail = failure.get("detail")
    return f"{reason} ({detail})" if detail else reason


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


def _client_error(exc: ClientError) -> str:
    return f"{_code(exc)}: {_message(exc)}"


def _error(exc: ClientError | BotoCoreError) -> str:
    return _client_error(exc) if isinstance(exc, ClientError) else str(exc)


def _retryable(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return _code(exc) in _RETRYABLE_CODES or int(status) >= 500
