"""The proxy under RSGI (`proxy.rsgi`, what `scalemesh serve proxy` runs): the same answers as
ASGI, the replay in one call, large files by path or streamed, and no path out of the deployment.

granian's RSGI scope carries the path already percent-decoded; `granian_scope` decodes it the
same way (`unquote`), so a hostile raw path reaches the proxy as granian would hand it over.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from app.settings import Settings
from app.storage.choice import storage_from_settings
from builder.spec import MANIFEST, output_prefix
from proxy.rsgi import ProxyServer, create_proxy_server_from_env
from tests.support.proxy import DEPLOYMENT, INDEX, file_entry, seed

pytestmark = pytest.mark.anyio

LARGE = bytes(range(256)) * 2400  # 600 KiB: above the 128 KiB a 1 MiB cache keeps


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Headers:
    """granian's `RSGIHeaders`: lower-case names, text values."""

    def __init__(self, pairs: dict[str, str]) -> None:
        self.pairs = pairs

    def get(self, name: str, default: Any = None) -> Any:
        return self.pairs.get(name, default)

    def items(self) -> list[tuple[str, str]]:
        return list(self.pairs.items())


@dataclasses.dataclass
class Scope:
    path: str
    headers: Headers
    method: str = "GET"
    query_string: str = ""
    scheme: str = "http"
    proto: str = "http"


class Transport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)


@dataclasses.dataclass
class Answered:
    status: int = 0
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""
    how: str = ""
    file: str = ""


class Protocol:
    """granian's RSGI HTTP protocol, keeping the one answer given."""

    def __init__(self) -> None:
        self.answer = Answered()
        self.transport = Transport()

    def _start(self, how: str, status: int, headers: list[tuple[str, str]]) -> None:
        assert not self.answer.how, "answered twice"
        self.answer = Answered(status, dict(headers), how=how)

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self._start("bytes", status, headers)
        self.answer.body = body

    def response_file(self, status: int, headers: list[tuple[str, str]], file: str) -> None:
        self._start("file", status, headers)
        self.answer.file = file

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> Transport:
        self._start("stream", status, headers)
        return self.transport


def granian_scope(raw_path: str, method: str = "GET", **headers: str) -> Scope:
    path, _, query = raw_path.partition("?")
    return Scope(unquote(path), Headers({"host": "web.localhost", **headers}), method, query)


@pytest.fixture
async def server(proxy_settings: Settings) -> AsyncIterator[ProxyServer]:
    settings = dataclasses.replace(proxy_settings, proxy_cache_mb=1)
    project_id = await seed(settings)
    storage = storage_from_settings(settings.storage)
    prefix = output_prefix(project_id, DEPLOYMENT)
    manifest = json.loads(await storage.get(prefix + MANIFEST))
    manifest["files"]["video.bin"] = file_entry(LARGE, "video/mp4", "public, max-age=0")
    await storage.put(prefix + "video.bin", LARGE)
    await storage.put(prefix + MANIFEST, json.dumps(manifest).encode())
    from proxy.asgi import running

    async with running(settings) as proxy:
        yield ProxyServer(settings, proxy)


async def ask(server: ProxyServer, scope: Scope) -> Answered:
    protocol = Protocol()
    await server.__rsgi__(scope, protocol)
    answer = protocol.answer
    if answer.how == "stream":
        answer.body = b"".join(protocol.transport.sent)
    elif answer.how == "file":
        answer.body = await asyncio.to_thread(Path(answer.file).read_bytes)
    return answer


async def test_a_page_is_served_then_replayed_in_one_call(server: ProxyServer) -> None:
    first = await ask(server, granian_scope("/"))
    remembered = len(server.proxy._memo)
    again = await ask(server, granian_scope("/"))
    assert len(server.proxy._memo) == remembered  # the second came from memory
    head = await ask(server, granian_scope("/", "HEAD"))

    for answer in (first, again):
        assert (answer.status, answer.how, answer.body) == (200, "bytes", INDEX)
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert again.headers == first.headers
    assert (head.status, head.body) == (200, b"")
    assert head.headers["content-length"] == str(len(INDEX))


async def test_a_protected_answer_is_never_replayed_past_the_gate(
    server: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ask(server, granian_scope("/"))
    replay, body = server.proxy.recall(next(iter(server.proxy._memo)))  # type: ignore[misc]
    locked = dataclasses.replace(replay, target=dataclasses.replace(replay.target, protected=True))
    monkeypatch.setattr(server.proxy, "recall", lambda key: (locked, body))
    handled: list[bytes] = []
    handle = server.proxy.handle

    async def counted(scope: Any, send: Any, memo_key: Any) -> None:
        handled.append(memo_key[2])
        await handle(scope, send, memo_key)

    monkeypatch.setattr(server.proxy, "handle", counted)

    answer = await ask(server, granian_scope("/"))

    assert handled == [b"/"]  # decided again, through the gate
    assert answer.status == 200


async def test_a_large_file_goes_by_path_or_streamed_and_a_range_streamed(
    server: ProxyServer,
) -> None:
    whole = await ask(server, granian_scope("/video.bin"))
    part = await ask(server, granian_scope("/video.bin", range="bytes=100-599999"))

    assert whole.status == 200
    assert whole.body == LARGE
    assert whole.headers["content-length"] == str(len(LARGE))
    local = server.proxy.storage.path_of("video.bin") is not None
    assert whole.how == ("file" if local else "stream")
    assert (part.status, part.how, part.body) == (206, "stream", LARGE[100:600_000])


HOSTILE = [
    "/..",
    "/../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/..%2f..%2fetc%2fpasswd",
    "/a/%2e%2e/%2e%2e/x",
    "/%5c..%5c..%5cwindows",
    "/..%5cx",
    "/%00",
    "/index.html%00.png",
    "/%252e%252e/x",
    "/.scalemesh/manifest.json",
    "/%2escalemesh/manifest.json",
    "/_redirects",
]


@pytest.mark.parametrize("raw", HOSTILE)
async def test_a_hostile_path_never_leaves_the_deployment(server: ProxyServer, raw: str) -> None:
    answer = await ask(server, granian_scope(raw))

    # Refused, not found, or at most this deployment's own page (the single-page-app
    # fallback serves index.html for an unknown path): never anything else.
    assert answer.status in (400, 404) or answer.body == INDEX, (raw, answer.status)
    assert b"root:" not in answer.body
    assert b'"files"' not in answer.body


def test_init_and_del_open_and_close_the_proxy_around_the_loop(proxy_settings: Settings) -> None:
    server = ProxyServer(proxy_settings)
    loop = asyncio.new_event_loop()
    try:
        server.__rsgi_init__(loop)
        assert server.proxy.settings is proxy_settings
        server.__rsgi_del__(loop)
    finally:
        loop.close()


def test_the_rsgi_factory_reads_its_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in os.environ if name.startswith("SCALEMESH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SCALEMESH_DATA_DIR", str(tmp_path / "data"))

    server = create_proxy_server_from_env()

    assert isinstance(server, ProxyServer)
    assert server.settings.data_dir == tmp_path / "data"
