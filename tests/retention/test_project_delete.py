"""A project with 10,000 deployments deletes in bounded time: rows in batches, its files left to
the storage sweeper, which deletes them in the background. The time is printed (`-s`), never
asserted."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from app import hostnames
from app.logs.archive import archive_key
from app.retention.sweeper import sweep
from app.settings import Settings
from app.storage.choice import storage_from_settings
from app.tables import Alias, Deployment
from builder.spec import output_prefix
from tests.support.api import Client, bearer, sign_up
from tests.support.projects import create

COUNT = 10_000


def test_a_project_with_10000_deployments_is_deleted_in_bounded_time(
    client: Client, settings: Settings
) -> None:
    token = sign_up(client)
    project_id = create(client, token, name="big").json()["id"]
    storage = storage_from_settings(settings.storage)
    ids = [str(uuid.uuid4()) for _ in range(COUNT)]
    start = datetime.now(UTC) - timedelta(days=1)

    async def fill() -> None:
        for first in range(0, COUNT, 500):
            chunk = ids[first : first + 500]
            await Deployment.insert(
                *(
                    Deployment(
                        id=d,
                        project=project_id,
                        state="ready",
                        created_at=start + timedelta(seconds=n),
                    )
                    for n, d in enumerate(chunk, first)
                )
            )
            await Alias.insert(
                *(
                    Alias(
                        hostname=hostnames.deployment_label("big", d),
                        project=project_id,
                        deployment=d,
                    )
                    for d in chunk
                )
            )
        for d in ids[:50]:
            await storage.put(output_prefix(project_id, d) + "index.html", b"hi")
            await storage.put(archive_key(d), b"{}\n")

    client.run(fill)

    began = time.perf_counter()
    response = client.delete("/projects/big", headers=bearer(token))
    took = time.perf_counter() - began

    assert response.status_code == 204, response.text
    print(f"\ndeleting a project with {COUNT:,} deployments took {took:.2f} s")
    assert client.run(lambda: Deployment.count()) == 0
    assert client.run(lambda: Alias.count()) == 0
    # Its files were left to the sweeper, which deletes them on its next runs.
    assert len(client.run(lambda: storage.list(""))) == 100
    found = client.run(lambda: sweep(storage))
    assert len(found.orphans) == 100
    assert client.run(lambda: storage.list("")) == []
