"""Raw HTTP/1.1 against the proxy under uvicorn with `ReplayingProtocol`: a counted app, a
deployment with a large file, and requests and answers as bytes on a socket."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from app.settings import Settings
from app.storage.choice import storage_from_settings
from app.tables import Alias, Deployment, Project, User
from builder.spec import MANIFEST, output_prefix
from proxy.asgi import ProxyApp
from proxy.replaying_protocol import ReplayingProtocol
from tests.support.ports import LOOPBACK
from tests.support.proxy import DEPLOYMENT, file_entry, seed, ship
from tests.support.servers import Serving, uvicorn_in_thread

LARGE = bytes(range(256)) * 400  # 100 KiB: written beside its headers, not copied after them
HOST = b"web.localhost"
RIVAL = "2f8e2c1a-9b7d-4e6f-8a5b-3c2d1e0f9a8b"
RIVAL_HOST = "rival.localhost"
RIVAL_LARGE = LARGE[::-1]
"""The other tenant's `data.bin`: as long as `LARGE`, other bytes."""


class Counting:
    """The proxy app, counting the HTTP requests that reach it."""

    def __init__(self, app: ProxyApp) -> None:
        self.app = app
        self.requests: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests.append(scope["path"])
        await self.app(scope, receive, send)


async def add_large(settings: Settings, project_id: int, deployment_id: str, body: bytes) -> None:
    """Put `body` in the deployment as `data.bin`, and in its manifest."""
    storage = storage_from_settings(settings.storage)
    prefix = output_prefix(project_id, deployment_id)
    manifest = json.loads(await storage.get(prefix + MANIFEST))
    manifest["files"]["data.bin"] = file_entry(
        body, "application/octet-stream", "public, max-age=0, must-revalidate"
    )
    await storage.put(prefix + "data.bin", body)
    await storage.put(prefix + MANIFEST, json.dumps(manifest).encode())


async def seed_with_large(settings: Settings) -> int:
    """`seed`, plus `data.bin` (`LARGE`) in the deployment; the project's id."""
    project_id = await seed(settings)
    await add_large(settings, project_id, DEPLOYMENT, LARGE)
    return project_id


async def seed_rival(settings: Settings) -> None:
    """Another tenant beside `seed`'s: Bob's project `rival`, a deployment behind the alias
    `rival` (`RIVAL_HOST`), with its own `data.bin` (`RIVAL_LARGE`) at the same path."""
    user = await User.insert(User(email="bob@example.com", password_hash="x"))
    project = await Project.insert(
        Project(slug="rival", name="rival", owner=user[0]["id"], git_url="https://x/z.git")
    )
    project_id = int(project[0]["id"])
    await Deployment.insert(Deployment(id=RIVAL, project=project_id, sha="b" * 40, state="ready"))
    await Alias.insert(Alias(hostname="rival", project=project_id, deployment=RIVAL))
    await ship(storage_from_settings(settings.storage), project_id, RIVAL, b"<h1>Rival</h1>")
    await add_large(settings, project_id, RIVAL, RIVAL_LARGE)


OPTIONS: dict[str, Any] = {"http": ReplayingProtocol, "access_log": False, "proxy_headers": False}
"""The uvicorn options `scalemesh serve proxy` gives the protocol that matter here."""


@contextlib.contextmanager
def serving_after(
    settings: Settings, prepare: Callable[[], Awaitable[object]], **options: Any
) -> Iterator[tuple[Serving, Counting]]:
    """`prepare` the database and storage, then serve the proxy under uvicorn in a thread
    (with `OPTIONS` and `options`), counting the requests that reach the app."""
    asyncio.run(prepare())
    counting = Counting(ProxyApp(settings))
    with uvicorn_in_thread(counting, **OPTIONS, **options) as serving:
        yield serving, counting


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[Serving, Counting]]:
    """The proxy under uvicorn in a thread, on `seed_with_large`'s deployment."""
    with serving_after(settings, functools.partial(seed_with_large, settings)) as running:
        yield running


def request(
    path: str, method: str = "GET", version: str = "1.1", host: str = HOST.decode(), **headers: str
) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", f"host: {host}"]
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
