"""`GET /health` reports each configured component, and 503 names what is down."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from app import health
from app.asgi import create_app
from app.health import run_checks
from app.settings import Settings
from app.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    StorageError,
    s3_client,
    storage_from_settings,
)
from tests.conftest import Client, redis_url


def test_health_is_ok_on_embedded_defaults(client: Client) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "components": {"database": "ok", "storage": "ok", "log_bus": "ok"},
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


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_health_names_an_unreachable_redis(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(
        SCALEMESH_DATABASE_URL=database_url,
        SCALEMESH_REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0",
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


# --- the storage adapters' shared contract (for the health probe) ---------------------------


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture(params=["local", "s3"])
def working_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "storage")
    request.getfixturevalue("aws")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="deployments")
    return S3Storage(s3_client(), "deployments", "prod/")


@pytest.fixture(params=["local", "s3"])
def broken_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        (tmp_path / "file").write_text("x")
        return LocalStorage(tmp_path / "file" / "storage")
    request.getfixturevalue("aws")
    return S3Storage(s3_client(), "no-such-bucket")


def test_storage_check_passes_when_reachable(working_storage: Storage) -> None:
    asyncio.run(working_storage.check())


def test_storage_check_raises_our_error_when_not(broken_storage: Storage) -> None:
    with pytest.raises(StorageError):
        asyncio.run(broken_storage.check())


def test_s3_endpoint_errors_become_storage_errors() -> None:
    client = s3_client(f"http://127.0.0.1:{closed_port()}")
    storage = S3Storage(client, "bucket")

    with pytest.raises(StorageError, match="bucket bucket"):
        asyncio.run(storage.check())


def test_storage_is_chosen_by_settings(make_settings: Callable[..., Settings]) -> None:
    s3 = storage_from_settings(make_settings(SCALEMESH_STORAGE_URL="s3://deployments/p").storage)
    local = storage_from_settings(make_settings().storage)

    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix) == ("deployments", "p/")
    assert isinstance(local, LocalStorage)
