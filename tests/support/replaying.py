"""Raw HTTP/1.1 against the proxy under uvicorn with `ReplayingProtocol`: a counted app, a
deployment with a large file, and requests and answers as bytes on a socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from app.settings import Settings
from app.storage.choice import storage_from_settings
from builder.spec import MANIFEST, output_prefix
from proxy.asgi import ProxyApp
from proxy.replaying_protocol import ReplayingProtocol
from tests.support.ports import LOOPBACK
from tests.support.proxy import DEPLOYMENT, file_entry, seed
from tests.support.servers import Serving, uvicorn_in_thread

LARGE = bytes(range(256)) * 400  # 100 KiB: written beside its headers, not copied after them
HOST = b"web.localhost"


class Counting:
    """The proxy app, counting the HTTP requests that reach it."""

    def __init__(self, app: ProxyApp) -> None:
        self.app = app
        self.requests: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests.append(scope["path"])
        await self.app(scope, receive, send)


async def seed_with_large(settings: Settings) -> None:
    """`seed`, plus `data.bin` (`LARGE`) in the deployment and its manifest."""
    project_id = await seed(settings)
    storage = storage_from_settings(settings.storage)
    prefix = output_prefix(project_id, DEPLOYMENT)
    manifest = json.loads(await storage.get(prefix + MANIFEST))
    manifest["files"]["data.bin"] = file_entry(
        LARGE, "application/octet-stream", "public, max-age=0, must-revalidate"
    )
    await storage.put(prefix + "data.bin", LARGE)
    await storage.put(prefix + MANIFEST, json.dumps(manifest).encode())


OPTIONS: dict[str, Any] = {"http": ReplayingProtocol, "access_log": False, "proxy_headers": False}
"""The uvicorn options `scalemesh serve proxy` gives the protocol that matter here."""


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[Serving, Counting]]:
    """The proxy under uvicorn in a thread, on `seed_with_large`'s deployment."""
    asyncio.run(seed_with_large(settings))
    counting = Counting(ProxyApp(settings))
    with uvicorn_in_thread(counting, **OPTIONS) as serving:
        yield serving, counting


def request(path: str, method: str = "GET", version: str = "1.1", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", f"host: {HOST.decode()}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


Answer = tuple[int, dict[bytes, bytes], bytes]


def read_answer(stream: Any, method: str = "GET") -> Answer:
    """One HTTP/1.1 answer from a buffered socket file: status, headers, body."""
    status = int(stream.readline().split()[1])
    headers: dict[bytes, bytes] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.rstrip(b"\r\n").partition(b": ")
        headers[name.lower()] = value
    size = 0 if method == "HEAD" else int(headers.get(b"content-length", b"0"))
    return status, headers, stream.read(size)


@contextlib.contextmanager
def connection(serving: Serving) -> Iterator[tuple[socket.socket, Any]]:
    with (
        socket.create_connection((LOOPBACK, serving.port), timeout=10) as sock,
        sock.makefile("rb") as stream,
    ):
        yield sock, stream


def ask(serving: Serving, *raw: bytes, methods: tuple[str, ...] = ()) -> list[Answer]:
    """Send `raw` requests at once on one connection; their answers, in order."""
    with connection(serving) as (sock, stream):
        sock.sendall(b"".join(raw))
        kinds = methods or ("GET",) * len(raw)
        return [read_answer(stream, method) for method in kinds]


def without_date(answer: Answer) -> Answer:
    status, headers, body = answer
    return status, {k: v for k, v in headers.items() if k != b"date"}, body
