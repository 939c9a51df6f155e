"""One project's slug can never be another's branch or deployment hostname, and a hostname
another project owns is never taken by a publish: refused loudly, never overwritten."""

from __future__ import annotations

import logging

import pytest

from app.deployments.lifecycle import DeploymentState, Target
from app.deployments.pinning import promote
from app.deployments.publish import publish
from app.errors import ErrorCode
from app.hostnames import branch_label, deployment_label, production_label
from app.tables import Alias, Deployment, Project
from tests.support.api import Client, sign_up
from tests.support.lookup import World
from tests.support.projects import create


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("shop git main", "-git-"),
        ("shop-git-feature-x", "-git-"),
        ("shop 1a2b3c4d5", "hexadecimal"),
        ("shop-123456789", "hexadecimal"),
    ],
)
def test_slugs_that_look_like_branch_or_deployment_labels_are_refused(
    client: Client, name: str, why: str
) -> None:
    token = sign_up(client)

    response = create(client, token, name=name)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert why in response.json()["detail"]
    assert client.run(lambda: Project.count()) == 0


def test_names_near_the_reserved_shapes_are_fine(client: Client) -> None:
    token = sign_up(client)

    for name in ("gitlab mirror", "shop git", "shop-1a2b3c4d", "shop-1a2b3c4d5x"):
        assert create(client, token, name=name).status_code == 201, name


async def _squatted(world: World, hostname: str) -> tuple[int, str]:
    """Another project `other` that already owns `hostname` (left from before the rule)."""
    owner = await Project.select(Project.owner).first()
    assert owner is not None
    other = await Project.insert(
        Project(slug="other", name="Other", owner=owner["owner"], git_url="https://x/o.git")
    )
    other_id = int(other[0]["id"])
    theirs = await Deployment.insert(
        Deployment(project=other_id, sha="b" * 40, state=DeploymentState.READY)
    )
    their_deployment = str(theirs[0]["id"])
    await Alias.insert(Alias(hostname=hostname, project=other_id, deployment=their_deployment))
    return other_id, their_deployment


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_publishing_a_hostname_another_project_owns_is_refused_loudly(
    world: World, caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    hostname = branch_label("shop", "main")
    other_id, theirs = await _squatted(world, hostname)
    ours = await world.deployment(DeploymentState.READY, branch="main", target=Target.PRODUCTION)
    heard: list[list[str]] = []

    async def announce(names: list[str]) -> None:
        heard.append(names)

    with caplog.at_level(logging.WARNING, logger="app.deployments.publish"):
        await publish(world.engine, ours, announce=announce)

    # Not overwritten: the hostname still serves the other project's deployment.
    row = await Alias.select(Alias.project, Alias.deployment).where(Alias.hostname == hostname)
    assert [(row[0]["project"], str(row[0]["deployment"]))] == [(other_id, theirs)]
    # Everything else was published and announced; the taken hostname was not.
    assert heard == [[deployment_label("shop", ours), "shop"]]
    [warning] = [r for r in caplog.records if r.getMessage() == "alias taken by another project"]
    assert warning.levelno == logging.WARNING
    assert warning.__dict__["hostname"] == hostname
    assert warning.__dict__["project"] == "shop"
    assert warning.__dict__["owner_project"] == "other"
    # The outcome is recorded on the deployment, which stays ready (its own URL works).
    [stored] = await Deployment.select(
        Deployment.state, Deployment.error, Deployment.error_code, Deployment.report_pending
    ).where(Deployment.id == ours)
    assert stored["state"] == DeploymentState.READY
    assert stored["error_code"] == ErrorCode.ALIAS_TAKEN
    assert hostname in stored["error"]
    assert stored["report_pending"] is True


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_publish_with_nothing_taken_records_no_outcome(
    world: World, anyio_backend: str
) -> None:
    ours = await world.deployment(DeploymentState.READY, branch="main", target=Target.PRODUCTION)

    async def announce(names: list[str]) -> None:
        return None

    await publish(world.engine, ours, announce=announce)

    stored = await Deployment.select(Deployment.error_code).where(Deployment.id == ours)
    assert stored[0]["error_code"] is None


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_publish_whose_every_hostname_is_taken_announces_nothing(
    world: World, anyio_backend: str
) -> None:
    ours = await world.deployment(DeploymentState.READY, target=Target.PREVIEW)
    hostname = deployment_label("shop", ours)
    other_id, theirs = await _squatted(world, hostname)
    heard: list[list[str]] = []

    async def announce(names: list[str]) -> None:
        heard.append(names)

    await publish(world.engine, ours, announce=announce)

    assert heard == []
    row = await Alias.select(Alias.project, Alias.deployment).where(Alias.hostname == hostname)
    assert [(row[0]["project"], str(row[0]["deployment"]))] == [(other_id, theirs)]
    stored = await Deployment.select(Deployment.error_code).where(Deployment.id == ours)
    assert stored[0]["error_code"] == ErrorCode.ALIAS_TAKEN


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_promoting_onto_a_production_hostname_another_project_owns_is_refused(
    world: World, caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    other_id, theirs = await _squatted(world, production_label("shop"))
    ours = await world.deployment(DeploymentState.READY, target=Target.PRODUCTION)
    heard: list[list[str]] = []

    async def announce(names: list[str]) -> None:
        heard.append(names)

    with caplog.at_level(logging.WARNING, logger="app.deployments.publish"):
        await promote(world.engine, announce, "shop", world.project_id, ours)

    assert heard == []
    row = await Alias.select(Alias.project, Alias.deployment).where(Alias.hostname == "shop")
    assert [(row[0]["project"], str(row[0]["deployment"]))] == [(other_id, theirs)]
    [warning] = [r for r in caplog.records if r.getMessage() == "alias taken by another project"]
    assert warning.__dict__["hostname"] == "shop"
    assert warning.__dict__["deployment_id"] == ours
