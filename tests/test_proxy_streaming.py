"""Large files and ranges: only the bytes sent are read, large files never sit whole in memory.

The proxy runs with a 1 MiB cache, so a file above 128 KiB (an eighth) is "large": it is
streamed from storage, or handed to the server by path (ASGI pathsend) on local storage.
Reads are counted by a `CountingStorage` put in place of the proxy's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from app.settings import Settings
from app.storage import STREAM_CHUNK
from app.storage.choice import storage_from_settings
from app.storage.s3 import S3Storage
from builder.spec import MANIFEST, output_prefix
from proxy.asgi import ProxyApp, running
from tests.support.counting_storage import CountingStorage
from tests.support.proxy import DEPLOYMENT, INDEX, Served, file_entry, seed

pytestmark = pytest.mark.anyio

LARGE = bytes(range(256)) * 2400  # 600 KiB: above the 128 KiB the 1 MiB cache keeps
TEXT = b"".join(b"line %06d of a large data file\n" % n for n in range(20_000))
SMALL = b"0123456789" * 100


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclasses.dataclass
class Streaming:
    served: Served
    storage: CountingStorage
    prefix: str


@pytest.fixture
async def streaming(proxy_settings: Settings) -> AsyncIterator[Streaming]:
    async with open_streaming(proxy_settings) as opened:
        yield opened


@pytest.fixture
async def local_streaming(settings: Settings) -> AsyncIterator[Streaming]:
    async with open_streaming(settings) as opened:
        yield opened


@contextlib.asynccontextmanager
async def open_streaming(given: Settings) -> AsyncIterator[Streaming]:
    settings = dataclasses.replace(given, proxy_cache_mb=1)
    project_id = await seed(settings)
    storage = storage_from_settings(settings.storage)
    prefix = output_prefix(project_id, DEPLOYMENT)
    manifest = json.loads(await storage.get(prefix + MANIFEST))
    octets, text = "application/octet-stream", "text/plain; charset=utf-8"
    for name, body, kind, encodings in (
        ("video.bin", LARGE, octets, ()),
        ("data.txt", TEXT, text, ("gzip",)),
        ("small.bin", SMALL, octets, ()),
        ("gone.bin", LARGE, octets, ()),  # listed, never uploaded
    ):
        if name != "gone.bin":
            await storage.put(prefix + name, body)
        manifest["files"][name] = file_entry(body, kind, "public, max-age=0", *encodings)
    await storage.put(prefix + "data.txt.gz", gzip.compress(TEXT, mtime=0))
    await storage.put(prefix + MANIFEST, json.dumps(manifest).encode())
    async with running(settings) as proxy:
        counting = CountingStorage(proxy.storage)
        proxy.storage = counting
        served = Served(proxy)
        await served.get("/")  # the site's manifest is read once, before counting
        counting.reset()
        yield Streaming(served, counting, prefix)
        await served.http.aclose()


def etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


async def test_a_large_file_is_streamed_in_pieces_and_never_cached(streaming: Streaming) -> None:
    for _ in range(2):
        response = await streaming.served.get("/video.bin")
        assert response.status_code == 200
        assert response.content == LARGE
        assert response.headers["content-length"] == str(len(LARGE))
        assert response.headers["etag"] == etag(LARGE)
        assert response.headers["accept-ranges"] == "bytes"

    cache = streaming.served.proxy.cache
    assert streaming.prefix + "video.bin" not in cache
    assert cache.stats.bytes == len(INDEX)  # the page read before counting, nothing more
    assert streaming.storage.whole == []  # never read whole
    assert streaming.storage.streamed == 2 * len(LARGE)
    assert streaming.storage.largest_piece <= STREAM_CHUNK


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [("bytes=1000-1999", 1000, 2000), ("bytes=-10", len(LARGE) - 10, len(LARGE))],
)
async def test_a_range_of_a_large_file_reads_only_that_range(
    streaming: Streaming, header: str, start: int, stop: int
) -> None:
    response = await streaming.served.get("/video.bin", range=header)

    assert response.status_code == 206
    assert response.content == LARGE[start:stop]
    assert response.headers["content-range"] == f"bytes {start}-{stop - 1}/{len(LARGE)}"
    assert streaming.storage.bytes_read == stop - start


async def test_a_range_of_a_small_file_reads_only_that_range_until_it_is_cached(
    streaming: Streaming,
) -> None:
    partial = await streaming.served.get("/small.bin", range="bytes=10-19")
    assert partial.content == SMALL[10:20]
    assert streaming.storage.bytes_read == 10

    whole = await streaming.served.get("/small.bin")  # now it is in memory
    again = await streaming.served.get("/small.bin", range="bytes=20-29")
    again_replayed = await streaming.served.get("/small.bin", range="bytes=10-19")

    assert whole.content == SMALL
    assert (again.status_code, again.content) == (206, SMALL[20:30])
    assert (again_replayed.status_code, again_replayed.content) == (206, SMALL[10:20])
    assert streaming.storage.bytes_read == 10 + len(SMALL)


async def test_head_and_304_of_a_large_file_read_nothing(streaming: Streaming) -> None:
    head = await streaming.served.http.head("/video.bin", headers={"host": "web.localhost"})
    unchanged = await streaming.served.get("/video.bin", **{"if-none-match": etag(LARGE)})
    head_range = await streaming.served.http.head(
        "/video.bin", headers={"host": "web.localhost", "range": "bytes=0-9"}
    )

    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(LARGE))
    assert unchanged.status_code == 304
    assert (head_range.status_code, head_range.headers["content-length"]) == (206, "10")
    assert streaming.storage.bytes_read == 0


async def test_a_large_files_compressed_sibling_is_sized_then_streamed(
    streaming: Streaming,
) -> None:
    packed = gzip.compress(TEXT, mtime=0)
    head = await streaming.served.http.head(
        "/data.txt", headers={"host": "web.localhost", "accept-encoding": "gzip"}
    )
    assert head.headers["content-length"] == str(len(packed))
    assert streaming.storage.bytes_read == 0

    zipped = await streaming.served.get("/data.txt", **{"accept-encoding": "gzip"})

    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["content-length"] == str(len(packed))
    assert zipped.content == TEXT  # httpx decodes it
    assert streaming.storage.whole == []
    assert streaming.storage.streamed == len(packed)


async def test_a_large_files_size_is_asked_of_storage_once_at_most(streaming: Streaming) -> None:
    heads: list[object] = []
    inner = streaming.storage.inner
    if isinstance(inner, S3Storage):
        inner.client.meta.events.register(
            "before-call.s3.HeadObject", lambda **call: heads.append(call)
        )

    for _ in range(3):
        whole = await streaming.served.get("/video.bin")
        zipped = await streaming.served.get("/data.txt", **{"accept-encoding": "gzip"})
        assert (whole.content, zipped.content) == (LARGE, TEXT)

    # The file's size is in its manifest; its compressed sibling's is asked once.
    assert streaming.storage.sized == [streaming.prefix + "data.txt.gz"]
    assert len(heads) == (1 if isinstance(inner, S3Storage) else 0)


async def test_a_large_file_missing_from_storage_is_a_502(streaming: Streaming) -> None:
    response = await streaming.served.get("/gone.bin")

    assert response.status_code == 502
    assert b"Storage unavailable" in response.content


async def call(app: ProxyApp, path: str, **headers: str) -> list[dict[str, Any]]:
    """One request as a server with ASGI pathsend makes it; the messages sent."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"web.localhost"),
            *((k.encode(), v.encode()) for k, v in headers.items()),
        ],
        "extensions": {"http.response.pathsend": {}},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent


async def test_a_server_with_pathsend_sends_a_large_local_file_itself(
    streaming: Streaming,
) -> None:
    sent = await call(streaming.served.app, "/video.bin")
    ranged = await call(streaming.served.app, "/video.bin", range="bytes=5-9")
    missing = await call(streaming.served.app, "/gone.bin")

    assert sent[0]["status"] == 200
    assert (b"content-length", str(len(LARGE)).encode()) in sent[0]["headers"]
    video = streaming.prefix + "video.bin"
    if await streaming.storage.path_of(video) is None:  # S3: no file here, so streamed
        assert [m["type"] for m in sent[1:]] == ["http.response.body"] * len(sent[1:])
        assert b"".join(m["body"] for m in sent[1:]) == LARGE
    else:
        assert sent[1]["type"] == "http.response.pathsend"
        assert await anyio.Path(sent[1]["path"]).read_bytes() == LARGE
    # A range is always streamed: pathsend sends whole files only.
    assert ranged[0]["status"] == 206
    assert b"".join(m.get("body", b"") for m in ranged[1:]) == LARGE[5:10]
    assert missing[0]["status"] == 502
    assert streaming.storage.whole == []


async def test_a_file_a_symlink_replaced_in_local_storage_is_never_served(
    local_streaming: Streaming, tmp_path: Path
) -> None:
    # Builds upload copies, never links; a symlink in the store was put there by someone else
    # and may lead anywhere: to another deployment's file or out of the store.
    secret = tmp_path / "elsewhere" / "secret.bin"
    secret.parent.mkdir()
    secret.write_bytes(b"S" * len(LARGE))  # the size the manifest lists
    root = local_streaming.served.proxy.settings.storage.local_root
    video = root / local_streaming.prefix / "video.bin"
    video.unlink()
    video.symlink_to(secret)

    sent = await call(local_streaming.served.app, "/video.bin")
    streamed = await local_streaming.served.get("/video.bin")
    ranged = await local_streaming.served.get("/video.bin", range="bytes=0-9")

    assert sent[0]["status"] == 502
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert (streamed.status_code, ranged.status_code) == (502, 502)
    assert b"SSSS" not in streamed.content + ranged.content + sent[1]["body"]
    assert local_streaming.storage.bytes_read == 0


@pytest.mark.parametrize(
    "header",
    [
        "bytes=" + ",".join(["0-"] * 500),  # many overlapping ranges: ignored, the file once
        "bytes=0-99999999999999999999",  # past the end: up to the end
        "bytes=-99999999999999999999",
    ],
)
async def test_many_or_huge_ranges_read_the_file_once_at_most(
    streaming: Streaming, header: str
) -> None:
    response = await streaming.served.get("/video.bin", range=header)

    assert response.status_code in (200, 206)
    assert response.content == LARGE
    assert streaming.storage.whole == []
    assert streaming.storage.streamed == len(LARGE)
    assert streaming.storage.largest_piece <= STREAM_CHUNK


@pytest.mark.parametrize("path", ["/../video.bin", "/%2e%2e/%2e%2e/video.bin", "/a/..%2fvideo.bin"])
async def test_a_range_on_a_hostile_path_reads_nothing(streaming: Streaming, path: str) -> None:
    sent = await call(streaming.served.app, path, range="bytes=0-9")  # the raw path, as sent

    assert sent[0]["status"] in (400, 404)
    assert streaming.storage.bytes_read == 0


async def test_a_client_that_stops_reading_pins_one_piece_and_frees_it_when_gone(
    streaming: Streaming,
) -> None:
    await call(streaming.served.app, "/video.bin", range="bytes=0-0")  # warm: clients opened
    streaming.storage.reset()
    opened = len(os.listdir("/proc/self/fd"))
    scope_sent: list[dict[str, Any]] = []
    stalled = anyio.Event()

    async def send(message: Any) -> None:
        scope_sent.append(dict(message))
        if message["type"] == "http.response.body":
            stalled.set()
            await anyio.sleep_forever()  # the client reads no more

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/video.bin",
        "raw_path": b"/video.bin",
        "query_string": b"",
        "headers": [(b"host", b"web.localhost")],
    }
    with anyio.move_on_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(streaming.served.app, scope, receive, send)
            await stalled.wait()
            assert streaming.storage.streamed == STREAM_CHUNK  # one piece, however long
            tasks.cancel_scope.cancel()  # the server gives up on the client

    assert [m["type"] for m in scope_sent] == ["http.response.start", "http.response.body"]
    assert len(os.listdir("/proc/self/fd")) == opened  # the file (or S3 body) is released
