"""The storage sweeper against S3 (moto) with 10,000 objects: a dry run deletes nothing and names
the orphans; real runs delete them 1,000 keys a call, resuming from their cursor, and keep every
live deployment's files and logs, and `__cache/`."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from app import database
from app.logs.archive import archive_key
from app.retention.sweeper import sweep
from app.settings import Settings
from app.storage.s3 import S3Storage
from app.tables import Deployment, Project, User
from builder.spec import output_prefix

pytestmark = pytest.mark.anyio
FILES = 49
"""Files per deployment; with its log, 50 objects each."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="deployments")
        yield client


def put_many(client: Any, keys: list[str]) -> None:
    """Straight into moto's backend: 10,000 PUTs through boto3 would take the test's time."""
    from moto.s3.models import s3_backends

    backend = s3_backends["123456789012"]["global"]
    for key in keys:
        backend.put_object("deployments", key, b"x")


@pytest.mark.timeout(300)  # moto lists 1,000 keys in about 3 s: 10,000 take 30 s or more
async def test_sweeping_10000_objects_in_batches(
    s3: Any, make_settings: Callable[..., Settings], tmp_path: Path, sqlite_template: Path
) -> None:
    # SQLite only: the listing is the slow part, and the database's share is two queries a run.
    shutil.copyfile(sqlite_template, tmp_path / "db.sqlite3")
    settings = make_settings(SCALEMESH_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    database.bind(database.make_engine(settings.database))
    user = (await User.insert(User(email="a@example.com", password_hash="x")))[0]["id"]
    project_id = int(
        (await Project.insert(Project(slug="web", name="web", owner=user, git_url="x")))[0]["id"]
    )
    live = [str(uuid.uuid4()) for _ in range(20)]
    for deployment_id in live:
        await Deployment.insert(Deployment(id=deployment_id, project=project_id))
    orphans = [str(uuid.uuid4()) for _ in range(180)]

    def objects(project: int, deployment_id: str) -> list[str]:
        prefix = output_prefix(project, deployment_id)
        return [f"{prefix}f{n}.js" for n in range(FILES)] + [archive_key(deployment_id)]

    live_keys = [key for d in live for key in objects(project_id, d)]
    # Crash leftovers of this project, and a deleted project's files.
    orphan_keys = [key for d in orphans[:90] for key in objects(project_id, d)]
    orphan_keys += [key for d in orphans[90:] for key in objects(project_id + 1, d)]
    cache = [f"__cache/{project_id}/main.tar.zst"]
    put_many(s3, live_keys + orphan_keys + cache)
    storage = S3Storage(s3, "deployments")
    calls: list[int] = []
    real = storage._delete_objects

    def counting(keys: list[str]) -> Any:
        calls.append(len(keys))
        return real(keys)

    storage._delete_objects = counting  # type: ignore[method-assign]

    dry = await sweep(storage, dry_run=True)

    assert len(dry.orphans) == 1000
    assert set(dry.orphans) <= set(orphan_keys)
    assert calls == []

    cursor, runs = "", 0
    while True:
        found = await sweep(storage, cursor)
        runs += 1
        cursor = found.cursor
        if not cursor:
            break

    assert runs <= 12  # 9,000 orphans, 1,000 a run at most
    assert max(calls) <= 1000
    assert sum(calls) == 9000
    assert sorted(await storage.list("")) == sorted(live_keys + cache)
    # Each orphan's files and log went; live rows' files, and `__cache/`, stayed.
    assert len(cursor) == 0
