"""A manifest's `rules` object as the builder writes it (Vercel's or Netlify's semantics), and
a deployment carrying it served by the real proxy app."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from app.settings import Settings
from app.storage.choice import storage_from_settings
from builder.content import cache_control, content_type
from builder.spec import MANIFEST, output_prefix
from proxy.asgi import running
from tests.support.proxy import DEPLOYMENT, Served, file_entry, seed


def vercel(**fields: Any) -> dict[str, Any]:
    """`rules` from a vercel.json (or scalemesh.json): `redirects=[...]`, `clean_urls=True`..."""
    return {"semantics": "vercel", "source": "vercel.json", **fields}


def netlify(**fields: Any) -> dict[str, Any]:
    """`rules` from a netlify.toml."""
    return {"semantics": "netlify", "source": "netlify.toml", **fields}


async def ship_site(
    settings: Settings,
    project_id: int,
    files: Mapping[str, bytes],
    rules: Mapping[str, Any] | None,
) -> None:
    """The seeded project's deployment (`tests.support.proxy.seed`) replaced by `files`, with
    `rules` in its manifest, as the builder uploads them."""
    storage = storage_from_settings(settings.storage)
    prefix = output_prefix(project_id, DEPLOYMENT)
    manifest: dict[str, Any] = {"version": 1, "files": {}}
    for path, body in files.items():
        await storage.put(prefix + path, body)
        manifest["files"][path] = file_entry(body, content_type(path), cache_control(path))
    if rules is not None:
        manifest["rules"] = rules
    await storage.put(prefix + MANIFEST, json.dumps(manifest).encode())


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, files: Mapping[str, bytes], rules: Mapping[str, Any] | None
) -> AsyncIterator[Served]:
    """The real proxy app serving a deployment of `files` and `rules` at `web.localhost`."""
    await ship_site(settings, await seed(settings), files, rules)
    async with running(settings) as proxy:
        served = Served(proxy)
        try:
            yield served
        finally:
            await served.http.aclose()
