"""The log bus unreachable: the logs endpoint answers from the archive or with 503, never 500;
a builder's batch is refused with 503, which its sink tries again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from app.http.errors import EXCEPTION_HANDLERS
from app.logs.archive import archive_key
from app.logs.bus import LogBusError
from app.settings import Settings
from tests.support.api import bearer
from tests.support.builds import Builds, open_builds
from tests.support.logstream import FlakyBus


@pytest.fixture
def builds(settings: Settings) -> Iterator[Builds]:
    yield from open_builds(settings)


def unreachable(builds: Builds) -> FlakyBus:
    """The bus of every service the requests reach, failing as an unreachable Redis does."""
    bus = FlakyBus(failures=1_000)
    services = builds.client.app.state.services
    services.bus = services.deployments.bus = services.builds.bus = bus
    return bus


def test_a_log_bus_error_anywhere_is_a_503_with_retry_after() -> None:
    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise LogBusError("log read: ConnectionError: gone")

    app = Litestar([boom], exception_handlers=EXCEPTION_HANDLERS, logging_config=None)
    with TestClient(app) as client:
        response = client.get("/boom")

    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    assert "try again" in response.json()["detail"]
    assert response.headers["retry-after"] == "5"


def test_the_logs_endpoint_answers_503_when_redis_is_away_and_nothing_is_archived(
    builds: Builds,
) -> None:
    deployment_id = builds.building()
    unreachable(builds)

    response = builds.client.get(
        f"/deployments/{deployment_id}/logs", headers=bearer(builds.user_token)
    )

    assert response.status_code == 503, response.text
    assert response.json()["error"] == "unavailable"


def test_the_logs_endpoint_reads_the_archive_when_redis_is_away(builds: Builds) -> None:
    deployment_id = builds.building()
    unreachable(builds)
    archived: list[dict[str, Any]] = [
        {"type": "line", "seq": 1, "ts": 1.0, "stream": "stdout", "text": "built"},
        {"type": "result", "seq": 2, "ts": 2.0, "state": "ready", "error": None},
    ]
    body = "".join(json.dumps(event) + "\n" for event in archived).encode()
    storage = builds.client.app.state.services.reconciler.storage
    builds.client.run(lambda: storage.put(archive_key(deployment_id), body))

    response = builds.client.get(
        f"/deployments/{deployment_id}/logs?since=1",
        headers={**bearer(builds.user_token), "Accept": "application/x-ndjson"},
    )

    assert response.status_code == 200, response.text
    assert [json.loads(row)["type"] for row in response.text.splitlines()] == ["result"]


def test_a_builders_batch_is_refused_with_503_while_the_bus_fails(builds: Builds) -> None:
    deployment_id = builds.building()
    token = builds.token_for(deployment_id)
    unreachable(builds)

    response = builds.send(
        deployment_id, token, {"type": "line", "ts": 1.0, "stream": "stdout", "text": "x"}
    )

    # 5xx: the builder's sink keeps the batch and tries again (`builder.remote.HttpSink`).
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "unavailable"


def test_a_builders_token_writes_only_its_own_log(builds: Builds) -> None:
    """A build is an attacker too: its token must not put lines into another build's log."""
    mine, theirs = builds.building("main"), builds.building("feature/login")
    token = builds.token_for(mine)
    line = {"type": "line", "ts": 1.0, "stream": "stdout", "text": "forged"}

    response = builds.send(theirs, token, line)

    assert response.status_code in (401, 403), response.text
    assert "forged" not in json.dumps(builds.log(theirs))
    assert builds.send(mine, token, line).status_code == 200
