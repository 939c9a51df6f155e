"""An in-memory deployment for the proxy's rules: its files, manifest, and one request at a time."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from builder.content import cache_control, content_type
from builder.spec import MANIFEST
from proxy.routing import path_to_key
from proxy.serve import ProxyRequest, ProxyResponse, respond
from proxy.site import Site


class FakeDeployment:
    """A manifest and the files behind it, as the builder would have uploaded them."""

    def __init__(
        self,
        files: Mapping[str, bytes],
        compressed: tuple[str, ...] = (),
        inline_limit: int | None = None,
    ) -> None:
        self.inline_limit = inline_limit
        self.objects: dict[str, bytes] = dict(files)
        self.reads: list[str] = []
        records: dict[str, Any] = {}
        for path, data in files.items():
            encodings = []
            if path in compressed:
                # Stand-ins: the proxy never decodes, so any distinct bytes will do.
                self.objects[path + ".br"] = b"BR:" + data
                self.objects[path + ".gz"] = gzip.compress(data, mtime=0)
                encodings = ["br", "gzip"]
            records[path] = {
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "content_type": content_type(path),
                "cache_control": cache_control(path),
                "encodings": encodings,
            }
        records[".scalemesh/manifest.json"] = {"size": 2, "sha256": "0" * 64}
        self.objects[".scalemesh/manifest.json"] = b"{}"
        self.manifest: dict[str, Any] = {"version": 1, "files": records}

    async def read(self, key: str) -> bytes:
        self.reads.append(key)
        try:
            return self.objects[key]
        except KeyError:
            raise FileNotFoundError(key) from None

    async def size(self, key: str) -> int:
        try:
            return len(self.objects[key])
        except KeyError:
            raise FileNotFoundError(key) from None

    async def site(self) -> Site:
        return await Site.load(
            self.manifest, self.read, size=self.size, inline_limit=self.inline_limit
        )


SITE = {
    "index.html": b"<h1>home</h1>",
    "about.html": b"<h1>about</h1>",
    "docs/index.html": b"<h1>docs</h1>",
    "docs/guide.html": b"<h1>guide</h1>",
    "assets/app-Bx7a9kQ2.js": b"console.log(1)",
    "logo.png": b"\x89PNG....",
    "data.txt": b"0123456789",
}


async def get(
    site: Site,
    path: str,
    *,
    method: str = "GET",
    query: str = "",
    accept_encoding: str = "",
    if_none_match: str = "",
    range: str = "",
    if_range: str = "",
    host: str = "web.localhost",
    headers: tuple[tuple[str, str], ...] = (),
) -> ProxyResponse:
    raw, _, raw_query = path.partition("?")
    request = ProxyRequest(
        method=method,
        key=path_to_key(raw),
        query=query or raw_query,
        accept_encoding=accept_encoding,
        if_none_match=if_none_match,
        range=range,
        if_range=if_range,
        host=host,
        headers=headers,
    )
    response = await respond(request, site)
    if response.streamed:
        # What the ASGI edge does: the body is the file, or the range of it, sent apart.
        data = await site.read(response.source)
        response.body = data if response.span is None else data[slice(*response.span)]
    return response


async def make(
    files: Mapping[str, bytes] = SITE,
    *,
    redirects: str | None = None,
    headers: str | None = None,
    compressed: tuple[str, ...] = (),
    rules: Mapping[str, Any] | None = None,
) -> Site:
    """A site of `files`, with a `_redirects`, a `_headers` and a manifest's `rules` if given."""
    everything = dict(files)
    if redirects is not None:
        everything["_redirects"] = redirects.encode()
    if headers is not None:
        everything["_headers"] = headers.encode()
    deployment = FakeDeployment(everything, compressed)
    if rules is not None:
        deployment.manifest["rules"] = rules
    return await deployment.site()


def etag_of(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()[:32]}"'


async def uploaded(output: Path) -> Site:
    """The deployment a real build uploaded to the directory `output`, loaded as the proxy
    loads it (its manifest, then its files)."""
    manifest = json.loads((output / MANIFEST).read_text())

    async def read(key: str) -> bytes:
        return (output / key).read_bytes()

    async def size(key: str) -> int:
        return (output / key).stat().st_size

    return await Site.load(manifest, read, size=size)
