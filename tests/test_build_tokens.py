"""Bootstrap tokens: stored hashed, one spec fetch each, good only for their own running build,
dead once it expires, ends or is issued anew."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.builds.tokens import BuildTokens, LogQuota, deployment_of
from app.deployments.lifecycle import DeploymentState
from app.errors import ErrorCode, UserError
from app.tables import BuildToken, Deployment
from tests.support.lookup import World

pytestmark = pytest.mark.anyio

TTL = timedelta(minutes=16)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(clock: Clock) -> BuildTokens:
    return BuildTokens(clock)


async def building(world: World) -> str:
    return await world.deployment(DeploymentState.BUILDING)


async def refused(call: object) -> ErrorCode:
    with pytest.raises(UserError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code


async def test_a_token_names_its_deployment_and_only_its_hash_is_kept(
    world: World, tokens: BuildTokens, clock: Clock
) -> None:
    deployment_id = await building(world)

    token = await tokens.issue(deployment_id, TTL)

    assert deployment_of(token) == deployment_id
    (row,) = await BuildToken.select().where(BuildToken.deployment == deployment_id)
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(row)
    assert row["expires_at"] == clock.now + TTL
    assert (row["spec_fetched_at"], row["log_bytes"]) == (None, 0)
    record = await tokens.check(deployment_id, token)
    assert record.deployment_state == DeploymentState.BUILDING


async def test_the_spec_is_fetched_once(world: World, tokens: BuildTokens, clock: Clock) -> None:
    deployment_id = await building(world)
    token = await tokens.issue(deployment_id, TTL)

    await tokens.check_for_spec(deployment_id, token)
    await tokens.claim_spec(deployment_id, token)

    fetched = await BuildToken.select(BuildToken.spec_fetched_at).first()
    assert fetched == {"spec_fetched_at": clock.now}
    assert await refused(tokens.check_for_spec(deployment_id, token)) is (
        ErrorCode.SPEC_ALREADY_FETCHED
    )
    assert await refused(tokens.claim_spec(deployment_id, token)) is ErrorCode.SPEC_ALREADY_FETCHED
    # The log still goes through after the fetch.
    await tokens.check(deployment_id, token)


async def test_a_token_acts_for_its_own_build_only(world: World, tokens: BuildTokens) -> None:
    first, second = await building(world), await building(world)
    token = await tokens.issue(first, TTL)
    await tokens.issue(second, TTL)
    secret = token.rpartition(".")[2]

    assert await refused(tokens.check(second, token)) is ErrorCode.BUILD_TOKEN_OTHER_BUILD
    assert await refused(tokens.claim_spec(second, token)) is ErrorCode.BUILD_TOKEN_OTHER_BUILD
    # The other build's id with this build's secret is no token at all.
    assert await refused(tokens.check(second, f"{second}.{secret}")) is (
        ErrorCode.BUILD_TOKEN_INVALID
    )
    unknown = str(uuid.uuid4())
    assert await refused(tokens.check(unknown, f"{unknown}.{secret}")) is (
        ErrorCode.BUILD_TOKEN_INVALID
    )


@pytest.mark.parametrize(
    "token",
    [
        "",
        "no-dot",
        "not-a-uuid." + "a" * 43,
        "{id}",
        "{id}.short",
        "{id}." + "a" * 42 + "!",
        "{upper}." + "a" * 43,
    ],
)
async def test_malformed_tokens_are_refused(world: World, tokens: BuildTokens, token: str) -> None:
    deployment_id = await building(world)
    await tokens.issue(deployment_id, TTL)
    token = token.format(id=deployment_id, upper=deployment_id.upper())

    assert deployment_of(token) is None
    assert await refused(tokens.check(deployment_id, token)) is ErrorCode.BUILD_TOKEN_INVALID


async def test_a_token_expires(world: World, tokens: BuildTokens, clock: Clock) -> None:
    deployment_id = await building(world)
    token = await tokens.issue(deployment_id, TTL)

    clock.now += TTL - timedelta(seconds=1)
    await tokens.check(deployment_id, token)
    clock.now += timedelta(seconds=1)

    assert await refused(tokens.check(deployment_id, token)) is ErrorCode.BUILD_TOKEN_EXPIRED
    assert await refused(tokens.claim_spec(deployment_id, token)) is ErrorCode.BUILD_TOKEN_EXPIRED


async def test_a_token_works_only_while_its_deployment_builds(
    world: World, tokens: BuildTokens
) -> None:
    deployment_id = await building(world)
    token = await tokens.issue(deployment_id, TTL)

    await Deployment.update({Deployment.state: DeploymentState.FAILED}).where(
        Deployment.id == deployment_id
    )

    assert await refused(tokens.check(deployment_id, token)) is ErrorCode.BUILD_NOT_RUNNING


async def test_a_revoked_token_is_dead(world: World, tokens: BuildTokens) -> None:
    deployment_id = await building(world)
    token = await tokens.issue(deployment_id, TTL)

    await tokens.revoke(deployment_id)
    await tokens.revoke(deployment_id)  # nothing left to revoke: fine

    assert await BuildToken.count() == 0
    assert await refused(tokens.check(deployment_id, token)) is ErrorCode.BUILD_TOKEN_INVALID


async def test_a_new_token_replaces_the_old_one(
    world: World, tokens: BuildTokens, clock: Clock
) -> None:
    deployment_id = await building(world)
    old = await tokens.issue(deployment_id, TTL)
    await tokens.claim_spec(deployment_id, old)
    assert await tokens.take_log(deployment_id, 10, 100) is LogQuota.TAKEN

    clock.now += timedelta(minutes=5)
    new = await tokens.issue(deployment_id, TTL)

    assert new != old
    assert await refused(tokens.check(deployment_id, old)) is ErrorCode.BUILD_TOKEN_INVALID
    await tokens.claim_spec(deployment_id, new)  # the restarted build fetches its own spec
    (row,) = await BuildToken.select(BuildToken.expires_at, BuildToken.log_bytes)
    assert row == {"expires_at": clock.now + TTL, "log_bytes": 0}


async def test_log_bytes_count_up_to_the_limit_then_refuse(
    world: World, tokens: BuildTokens
) -> None:
    deployment_id = await building(world)
    await tokens.issue(deployment_id, TTL)

    taken = [await tokens.take_log(deployment_id, size, 100) for size in (60, 40)]
    passed = [await tokens.take_log(deployment_id, size, 100) for size in (1, 1, 0)]

    assert taken == [LogQuota.TAKEN, LogQuota.TAKEN]
    assert passed == [LogQuota.PASSED_NOW, LogQuota.PASSED, LogQuota.PASSED]
    assert await BuildToken.select(BuildToken.log_bytes).first() == {"log_bytes": 101}
