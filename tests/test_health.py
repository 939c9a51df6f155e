"""`GET /health` reports each configured component, and 503 names what is down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from app import health
from app.asgi import create_app
from app.health import run_checks
from app.settings import Settings
from tests.support.api import Client
from tests.support.ports import refused_port
from tests.support.services import redis_url


def test_health_is_ok_on_embedded_defaults(client: Client) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "components": {"database": "ok", "storage": "ok", "log_bus": "ok"},
        "warnings": [],
        "dead_letters": 0,
    }
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.redis
def test_health_pings_redis_when_configured(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(SCALEMESH_DATABASE_URL=database_url, SCALEMESH_REDIS_URL=redis_url())

    with Client(create_app(settings)) as client:
        response = client.get("/health")

    assert response.status_code == 200
    assert response.json()["components"]["log_bus"] == "ok"


def test_health_names_an_unreachable_redis(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    with refused_port() as port:
        settings = make_settings(
            SCALEMESH_DATABASE_URL=database_url,
            SCALEMESH_REDIS_URL=f"redis://127.0.0.1:{port}/0",
        )
        with Client(create_app(settings)) as client:
            response = client.get("/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["components"]["log_bus"].startswith("down: ")
    assert body["components"]["database"] == "ok"


def test_health_names_unwritable_storage(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    settings = make_settings(
        SCALEMESH_DATABASE_URL=database_url, SCALEMESH_STORAGE_URL=f"file://{blocker}/storage"
    )

    with Client(create_app(settings)) as client:
        response = client.get("/health")

    assert response.status_code == 503
    assert response.json()["components"]["storage"].startswith("down: StorageError")


def test_a_hanging_check_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.05)

    async def hang() -> None:
        await asyncio.sleep(10)

    async def fine() -> None:
        return None

    result = asyncio.run(run_checks({"database": fine, "log_bus": hang}))

    assert result.status == "degraded"
    assert result.components == {"database": "ok", "log_bus": "down: no answer within 0.05 s"}


def test_a_failing_check_shows_its_kind_to_anyone_and_its_message_only_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """/health and /readyz answer anonymous requests: a driver's message (hosts, ports, the
    database user) is for the operator's log."""

    async def refused() -> None:
        raise ConnectionError('connect to db.internal:5432 as user "scalemesh" refused')

    with caplog.at_level(logging.WARNING, logger="app.health"):
        result = asyncio.run(run_checks({"database": refused}))

    assert result.components == {"database": "down: ConnectionError"}
    logged = [getattr(record, "error", "") for record in caplog.records]
    assert any("db.internal" in error for error in logged), logged


def test_livez_asks_nothing_and_readyz_names_what_is_down(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    """Liveness must not restart a replica for a Redis outage; readiness takes it out."""
    with refused_port() as port:
        settings = make_settings(
            SCALEMESH_DATABASE_URL=database_url, SCALEMESH_REDIS_URL=f"redis://127.0.0.1:{port}/0"
        )
        with Client(create_app(settings)) as client:
            alive = client.get("/livez")
            ready = client.get("/readyz")

    assert (alive.status_code, alive.json()) == (200, {"status": "alive"})
    assert ready.status_code == 503
    assert ready.json()["components"]["log_bus"].startswith("down: ")
    assert ready.json()["components"]["database"] == "ok"


def test_readyz_is_ok_when_everything_answers(client: Client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert set(response.json()["components"]) == {"database", "storage", "log_bus"}


def test_readyz_reports_no_dead_letter_count_it_never_read(client: Client) -> None:
    # /readyz is the probe: it does not count dead letters, so it must not claim a count
    # (`null` means "cannot be read" on /health).
    ready = client.get("/readyz").json()

    assert "dead_letters" not in ready
    assert client.get("/health").json()["dead_letters"] == 0
