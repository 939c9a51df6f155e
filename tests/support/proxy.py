"""A deployment shipped as the builder leaves it, and a proxy serving it to an in-process client.

`seed()` writes the rows and files; `on_storage()` gives the settings for either storage
(a local directory, or S3 under moto); `Served` wraps a running `Proxy` with an HTTP client.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import httpx

from app import database
from app.settings import Settings
from app.storage import Storage
from app.storage.choice import storage_from_settings
from app.tables import Alias, Deployment, Domain, Project, User
from builder.spec import MANIFEST, output_prefix
from proxy.asgi import Proxy, ProxyApp
from tests.support.s3_bucket import fake_aws

DEPLOYMENT = "0f8e2c1a-9b7d-4e6f-8a5b-3c2d1e0f9a8b"
OTHER = "1f8e2c1a-9b7d-4e6f-8a5b-3c2d1e0f9a8b"
INDEX = b"<!doctype html><h1>Hello</h1>"
SCRIPT = b"console.log('hello');\n" * 100


def file_entry(body: bytes, content_type: str, cache: str, *encodings: str) -> dict[str, Any]:
    """A manifest entry for `body`, as the builder writes it."""
    return {
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "content_type": content_type,
        "cache_control": cache,
        "encodings": list(encodings),
    }


async def ship(storage: Storage, project_id: int, deployment_id: str, index: bytes) -> None:
    """Write what the builder would: the files, a gzip sibling, then the manifest."""
    prefix = output_prefix(project_id, deployment_id)
    await storage.put(prefix + "index.html", index)
    await storage.put(prefix + "assets/app-1a2b3c4d.js", SCRIPT)
    await storage.put(prefix + "assets/app-1a2b3c4d.js.gz", gzip.compress(SCRIPT, mtime=0))
    manifest = {
        "version": 1,
        "files": {
            "index.html": file_entry(
                index, "text/html; charset=utf-8", "public, max-age=0, must-revalidate"
            ),
            "assets/app-1a2b3c4d.js": file_entry(
                SCRIPT,
                "text/javascript; charset=utf-8",
                "public, max-age=31536000, immutable",
                "gzip",
            ),
        },
    }
    await storage.put(prefix + MANIFEST, json.dumps(manifest).encode())


async def seed(settings: Settings, *, state: str = "ready") -> int:
    """A user, a project `web` and one deployment behind its production alias `web`, which
    its verified custom domain `www.web.dev` follows."""
    engine = database.make_engine(settings.database)
    database.bind(engine)
    user = await User.insert(User(email="a@example.com", password_hash="x"))
    project = await Project.insert(
        Project(slug="web", name="web", owner=user[0]["id"], git_url="https://x/y.git")
    )
    project_id = int(project[0]["id"])
    for deployment_id in (DEPLOYMENT, OTHER):
        await Deployment.insert(
            Deployment(id=deployment_id, project=project_id, sha="a" * 40, state=state)
        )
    await Alias.insert(Alias(hostname="web", project=project_id, deployment=DEPLOYMENT))
    # A verified custom domain: it follows the production label `web`.
    stamp = datetime.now(UTC)
    await Domain.insert(
        Domain(name="www.web.dev", project=project_id, token="t" * 32, verified_at=stamp)
    )
    storage = storage_from_settings(settings.storage)
    await ship(storage, project_id, DEPLOYMENT, INDEX)
    await ship(storage, project_id, OTHER, b"<h1>Other</h1>")
    return project_id


class Served:
    """A running proxy and an HTTP client that talks to it in-process."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.app = ProxyApp(proxy.settings, proxy)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://web.localhost:8080"
        )

    async def get(self, path: str, host: str = "web.localhost:8080", **headers: str) -> Any:
        return await self.http.get(path, headers={"host": host, **headers})


@contextlib.contextmanager
def on_storage(
    kind: str, settings: Settings, make_settings: Callable[..., Settings]
) -> Iterator[Settings]:
    """`settings` with `kind` storage: `local` as given, or `s3`, a moto bucket."""
    if kind == "local":
        yield settings
        return
    with fake_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="deployments")
        yield make_settings(
            SCALEMESH_DATABASE_URL=settings.database.url.reveal(),
            SCALEMESH_STORAGE_URL="s3://deployments/sites",
        )


def now() -> datetime:
    """For `updated_at`: the proxies notice a moved alias by the table's latest change."""
    return datetime.now(UTC)
