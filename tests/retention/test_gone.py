"""A pruned deployment's own hostname answers 410 Gone with a small page through the real proxy,
on both storages; one not yet ready still answers 404."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from app import hostnames
from app.retention.teardown import Doomed, prune
from app.settings import Settings
from app.storage.choice import storage_from_settings
from app.tables import Alias, Deployment
from builder.spec import output_prefix
from proxy.asgi import running
from tests.support.proxy import DEPLOYMENT, OTHER, Served, seed

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def served(proxy_settings: Settings) -> AsyncIterator[Served]:
    project_id = await seed(proxy_settings)
    for deployment_id in (DEPLOYMENT, OTHER):
        await Alias.insert(
            Alias(
                hostname=hostnames.deployment_label("web", deployment_id),
                project=project_id,
                deployment=deployment_id,
            )
        )
    async with running(proxy_settings) as proxy:
        served = Served(proxy)
        yield served
        await served.http.aclose()


async def test_a_pruned_deployment_answers_410_gone(
    served: Served, proxy_settings: Settings
) -> None:
    own = hostnames.deployment_label("web", OTHER) + ".localhost:8080"
    assert (await served.get("/", host=own)).status_code == 200
    storage = storage_from_settings(proxy_settings.storage)
    announced: list[str] = []

    async def announce(names: list[str]) -> None:
        announced.extend(names)
        served.proxy.lookup.invalidate(names)

    pruned = await prune(
        storage, announce, [Doomed(OTHER, await _project(), "web")], datetime.now(UTC)
    )

    gone = await served.get("/", host=own)
    deep = await served.get("/assets/app-1a2b3c4d.js", host=own)
    assert pruned == 1
    assert (gone.status_code, deep.status_code) == (410, 410)
    assert "Deployment removed" in gone.text
    assert "push" in gone.text
    assert not await storage.list(output_prefix(await _project(), OTHER))
    # Production (another deployment) is untouched.
    assert (await served.get("/")).status_code == 200


async def test_a_deployment_not_ready_yet_still_answers_404(served: Served) -> None:
    await Deployment.update({Deployment.state: "building"}).where(Deployment.id == OTHER)
    own = hostnames.deployment_label("web", OTHER) + ".localhost:8080"

    response = await served.get("/", host=own)

    assert response.status_code == 404
    assert "still building" in response.text


async def _project() -> int:
    row = await Deployment.select(Deployment.project).where(Deployment.id == OTHER).first()
    assert row is not None
    return int(row["project"])
