"""Rollback that sticks: a rollback pins production; pushes still build but leave it; promoting
again unpins; publishing replicas and a racing promote keep to the pin."""

from __future__ import annotations

import asyncio
from typing import Any

from piccolo.engine.sqlite import SQLiteEngine
from piccolo.querystring import QueryString

from app import hostnames
from app.database import AnyEngine, write_transaction
from app.deployments import publish
from app.settings import Settings
from app.tables import Alias, Deployment, Project
from tests.support.api import Client, bearer, sign_up
from tests.support.deploying import aliases, deploy, fetch, replica, ship
from tests.support.deployments import FakeRunner, succeed, tick


def project(client: Client, token: str) -> dict[str, Any]:
    response = client.get("/projects/web", headers=bearer(token))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def promote(client: Client, token: str, deployment_id: str) -> dict[str, Any]:
    response = client.post(f"/deployments/{deployment_id}/promote", headers=bearer(token))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_rollback_survives_the_next_push_until_a_promote(
    client: Client, token: str, runner: FakeRunner
) -> None:
    first = ship(client, runner, token)
    second = ship(client, runner, token)

    promote(client, token, first["id"])
    third = ship(client, runner, token)

    assert third["state"] == "ready"
    served = aliases(client)
    assert served["web"] == first["id"]
    assert served[hostnames.deployment_label("web", third["id"])] == third["id"]
    assert served[hostnames.branch_label("web", "main")] == third["id"]
    pin = project(client, token)["production_pin"]
    assert pin["deployment"] == first["id"]
    assert pin["by"] == "ada@example.com"
    assert pin["since"]

    promote(client, token, second["id"])  # older than the third: still a rollback, pinned there
    assert aliases(client)["web"] == second["id"]
    assert project(client, token)["production_pin"]["deployment"] == second["id"]

    promote(client, token, third["id"])  # the newest: production follows pushes again
    assert project(client, token)["production_pin"] is None
    fourth = ship(client, runner, token)
    assert aliases(client)["web"] == fourth["id"]


def test_promoting_the_newest_deployment_does_not_pin(
    client: Client, token: str, runner: FakeRunner
) -> None:
    ship(client, runner, token)
    second = ship(client, runner, token)

    promote(client, token, second["id"])

    assert project(client, token)["production_pin"] is None


def test_a_preview_promoted_where_production_serves_nothing_yet_is_not_pinned(
    client: Client, token: str, runner: FakeRunner
) -> None:
    preview = ship(client, runner, token, ref="feature/login")

    promote(client, token, preview["id"])

    assert aliases(client)["web"] == preview["id"]
    assert project(client, token)["production_pin"] is None


def test_a_production_hostname_another_project_owns_is_left_alone(
    client: Client, token: str, runner: FakeRunner
) -> None:
    first = ship(client, runner, token)
    second = ship(client, runner, token)
    response = client.post(
        "/project", json={"name": "other", "repo": "octo/other"}, headers=bearer(token)
    )
    other = response.json()["id"]
    client.run(lambda: Alias.update({Alias.project: other}).where(Alias.hostname == "web"))

    promote(client, token, first["id"])

    assert aliases(client)["web"] == second["id"]
    assert project(client, token)["production_pin"] is None


def test_unpinning_serves_the_newest_ready_production_deployment(
    client: Client, token: str, runner: FakeRunner
) -> None:
    first = ship(client, runner, token)
    ship(client, runner, token)
    promote(client, token, first["id"])
    third = ship(client, runner, token)

    response = client.delete("/projects/web/production-pin", headers=bearer(token))

    assert response.status_code == 200, response.text
    assert response.json()["production"]["id"] == third["id"]
    assert aliases(client)["web"] == third["id"]
    assert project(client, token)["production_pin"] is None


def test_unpinning_with_nothing_ready_only_clears_the_pin(client: Client, token: str) -> None:
    deploy(client, token)
    client.run(lambda: Project.update({Project.production_pinned_to: _A_UUID}, force=True))

    response = client.delete("/projects/web/production-pin", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {"production": None}
    assert project(client, token)["production_pin"] is None


def test_unpinning_needs_push_access(client: Client, token: str) -> None:
    other = sign_up(client, "bob@example.com")

    response = client.delete("/projects/web/production-pin", headers=bearer(other))

    assert response.status_code == 404


def test_the_pin_outlives_the_account_that_made_it_without_its_name(
    client: Client, token: str, runner: FakeRunner
) -> None:
    first = ship(client, runner, token)
    ship(client, runner, token)
    promote(client, token, first["id"])

    client.run(lambda: Project.update({Project.production_pinned_by: None}, force=True))

    pin = project(client, token)["production_pin"]
    assert (pin["deployment"], pin["by"]) == (first["id"], None)


def production_build(client: Client, runner: FakeRunner, token: str) -> dict[str, Any]:
    """A production build of a tag, succeeded but not yet seen by a pass (no branch: it
    supersedes nothing)."""
    deployment = deploy(client, token, ref="v1.0")
    client.run(
        lambda: Deployment.update({Deployment.target: "production"}).where(
            Deployment.id == deployment["id"]
        )
    )
    tick(client)
    succeed(client, runner, deployment["id"])
    return deployment


def test_two_replicas_publishing_under_a_pin_leave_production_alone(
    client: Client, token: str, runner: FakeRunner, settings: Settings
) -> None:
    first = ship(client, runner, token)
    ship(client, runner, token)
    promote(client, token, first["id"])
    newer = [production_build(client, runner, token) for _ in range(2)]
    tick(client)
    ids = [deployment["id"] for deployment in newer]
    # Both published again at once, as two replicas finishing an interrupted publish would.
    client.run(
        lambda: Deployment.update({Deployment.publish_pending: True}).where(
            Deployment.id.is_in(ids)
        )
    )
    replicas = [replica(client, settings, runner, name) for name in ("one", "two")]

    async def race() -> None:
        await asyncio.gather(*(each.tick() for each in replicas))

    client.run(race)

    served = aliases(client)
    assert served["web"] == first["id"]
    for deployment_id in ids:
        assert served[hostnames.deployment_label("web", deployment_id)] == deployment_id
        assert fetch(client, token, deployment_id)["state"] == "ready"
    pending = client.run(
        lambda: (
            Deployment.select(Deployment.publish_pending)
            .where(Deployment.id.is_in(ids))
            .output(as_list=True)
        )
    )
    assert pending == [False, False]


def test_a_publish_waiting_on_a_rollback_in_progress_keeps_to_its_pin(
    client: Client, token: str, runner: FakeRunner
) -> None:
    """A rollback holds the project's row while it moves production; a publish of a newer
    build waits for it, then reads the pin it committed (it read none before: no lock, and it
    would point production at the newer build after the rollback's commit)."""
    first = ship(client, runner, token)
    ship(client, runner, token)
    newer = production_build(client, runner, token)
    engine = client.app.state.services.reconciler.engine
    found = client.run(lambda: Project.select(Project.id).where(Project.slug == "web").first())
    project_id = int(found["id"])

    async def scenario() -> None:
        held, release = asyncio.Event(), asyncio.Event()

        async def rollback() -> None:
            async with write_transaction(engine):
                await publish.locked_pin(project_id)
                await publish.point_alias("web", project_id, first["id"])
                await Project.update({Project.production_pinned_to: first["id"]}).where(
                    Project.id == project_id
                )
                held.set()
                await release.wait()

        rolling = asyncio.create_task(rollback())
        await held.wait()
        publishing = asyncio.create_task(publish.publish(engine, newer["id"], _quiet))
        await _until_waiting(engine)
        release.set()
        await asyncio.gather(rolling, publishing)

    client.run(scenario)

    assert aliases(client)["web"] == first["id"]
    assert project(client, token)["production_pin"]["deployment"] == first["id"]


async def _until_waiting(engine: AnyEngine) -> None:
    """Until another transaction waits on a row lock (PostgreSQL); SQLite's writers queue in
    this process, so the publish is let run up to that queue."""
    if isinstance(engine, SQLiteEngine):
        for _ in range(50):
            await asyncio.sleep(0)
        return
    waiting = QueryString(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    )
    while not (await engine.run_querystring(waiting))[0]["n"]:  # noqa: ASYNC110 - the waiter is another connection: no event to await
        await asyncio.sleep(0.01)


_A_UUID = "00000000-0000-4000-8000-000000000001"


async def _quiet(hostnames: list[str]) -> None:
    """Announcing moved hostnames: no proxy listens here."""
