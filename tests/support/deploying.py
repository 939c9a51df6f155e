"""Deploying through the API in tests: queue, read, build, ship, the aliases that point where,
and another API process's reconcile loop."""

from __future__ import annotations

from typing import Any

from app.projects.envvars import Sealer
from app.reconcile import Reconciler
from app.replicas import Replica
from app.runners.api import BuildRunner
from app.settings import Settings
from app.tables import Alias
from tests.support.api import Client, bearer
from tests.support.deployments import FakeRunner, succeed, tick


def deploy(client: Client, token: str, **body: Any) -> dict[str, Any]:
    body.setdefault("project", "web")
    response = client.post("/deploy", json=body, headers=bearer(token))
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


def fetch(client: Client, token: str, deployment_id: str) -> dict[str, Any]:
    response = client.get(f"/deployments/{deployment_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def aliases(client: Client) -> dict[str, str]:
    rows = client.run(lambda: Alias.select(Alias.hostname, Alias.deployment))
    return {row["hostname"]: str(row["deployment"]) for row in rows}


def built(client: Client, runner: FakeRunner, token: str, **body: Any) -> dict[str, Any]:
    """Queue a deployment, start its build and let it succeed; no pass has seen the end yet."""
    deployment = deploy(client, token, **body)
    tick(client)
    succeed(client, runner, deployment["id"])
    return deployment


def ship(client: Client, runner: FakeRunner, token: str, **body: Any) -> dict[str, Any]:
    deployment = built(client, runner, token, **body)
    tick(client)
    return fetch(client, token, deployment["id"])


def make_roomy(settings: Settings) -> Settings:
    from dataclasses import replace

    return replace(settings, max_concurrent_builds=10)


def replica(
    client: Client, settings: Settings, runner: BuildRunner, name: str, host: str = "one"
) -> Reconciler:
    """A reconciler as another API process would run it: its own replica id, on `host`."""
    services = client.app.state.services
    return Reconciler(
        make_roomy(settings),
        services.reconciler.engine,
        services.reconciler.storage,
        services.bus,
        runner,
        Sealer(settings.require_secret_keys()),
        replica=Replica(settings.reconcile_interval, id=name, host=host),
    )
