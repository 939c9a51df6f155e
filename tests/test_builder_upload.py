"""Uploading an output directory: what is published, with which headers, manifest last."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import boto3
import brotli
import pytest
from moto.server import ThreadedMotoServer

from builder import upload
from builder.content import IMMUTABLE, REVALIDATE
from builder.spec import SpecError
from builder.upload import (
    Headers,
    LocalStorage,
    Pending,
    S3Storage,
    StorageError,
    missing_output,
    open_storage,
    upload_output,
    write_manifest,
)
from tests.support.s3_bucket import fake_aws

PREFIX = "__outputs/7/dpl/"
SCRIPT = ("export const greet = (name) => `hello, ${name}`;\n" * 60).encode()
STYLE = ("body { color: #333; margin: 0 auto; }\n" * 60).encode()
RANDOM_TEXT = os.urandom(4096)


def make_output(root: Path) -> Path:
    files: dict[str, bytes] = {
        "index.html": b"<!doctype html><p>" + b"hello " * 400,
        "about/index.html": b"<p>about</p>",
        "assets/index-Bx7a9kQe.js": SCRIPT,
        "assets/style-1a2b3c4d.css": STYLE,
        "logo.png": os.urandom(2048),
        "noise.txt": RANDOM_TEXT,  # compressible type, incompressible bytes
        "prebuilt.js": SCRIPT,
        "prebuilt.js.gz": gzip.compress(b"the site's own"),
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def files_in(root: Path) -> list[tuple[str, Path]]:
    """What `builder.staging.stage` would hand over for a plain output: every file, by path."""
    return sorted(
        (path.relative_to(root).as_posix(), path) for path in root.rglob("*") if path.is_file()
    )


# --- what is published --------------------------------------------------------------------


def test_missing_output_messages() -> None:
    assert str(missing_output("dist/", empty=False)) == (
        "output directory dist/ was not found after the build (set output_directory)"
    )
    assert str(missing_output("build/", empty=True)) == (
        "output directory build/ is empty after the build (set output_directory)"
    )


# --- local storage --------------------------------------------------------------------------


def test_upload_to_a_directory(tmp_path: Path) -> None:
    out = make_output(tmp_path / "out")
    storage_root = tmp_path / "storage"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    storage = LocalStorage(storage_root)

    uploaded = upload_output(files_in(out), storage, PREFIX, scratch)
    storage.close()

    deployed = storage_root / PREFIX
    published = sorted(p.relative_to(deployed).as_posix() for p in deployed.rglob("*"))
    assert published == sorted(
        [
            "about",
            "about/index.html",
            "assets",
            "assets/index-Bx7a9kQe.js",
            "assets/index-Bx7a9kQe.js.br",
            "assets/index-Bx7a9kQe.js.gz",
            "assets/style-1a2b3c4d.css",
            "assets/style-1a2b3c4d.css.br",
            "assets/style-1a2b3c4d.css.gz",
            "index.html",
            "index.html.br",
            "index.html.gz",
            "logo.png",
            "noise.txt",
            "prebuilt.js",
            "prebuilt.js.br",
            "prebuilt.js.gz",
        ]
    )
    for path, record in uploaded.files.items():
        original = (out / path).read_bytes()
        assert (deployed / path).read_bytes() == original
        assert record.size == len(original)
        assert record.sha256 == hashlib.sha256(original).hexdigest()
        if "br" in record.encodings:
            assert brotli.decompress((deployed / f"{path}.br").read_bytes()) == original
            # The manifest records what a browser asking for brotli is sent.
            assert record.to_json()["br_size"] == (deployed / f"{path}.br").stat().st_size
        else:
            assert record.to_json()["br_size"] == record.size
        if "gzip" in record.encodings:
            assert gzip.decompress((deployed / f"{path}.gz").read_bytes()) == original
    records = uploaded.files
    assert records["assets/index-Bx7a9kQe.js"].encodings == ("br", "gzip")
    assert records["about/index.html"].encodings == ()  # 1 KiB or less: not worth it
    assert records["logo.png"].encodings == ()  # already compressed media
    assert records["noise.txt"].encodings == ()  # compression would only grow it
    assert records["prebuilt.js"].encodings == ("br",)  # the site's own .gz wins
    assert (deployed / "prebuilt.js.gz").read_bytes() == (out / "prebuilt.js.gz").read_bytes()
    assert records["assets/index-Bx7a9kQe.js"].cache_control == IMMUTABLE
    assert records["index.html"].cache_control == REVALIDATE
    assert records["index.html"].content_type == "text/html; charset=utf-8"
    assert uploaded.siblings == 7
    assert uploaded.bytes == sum(record.size for record in records.values())
    assert list(records) == sorted(records)
    assert not list(deployed.rglob(".*.tmp"))  # every temporary name was renamed away


def test_brotli_quality_is_rationed_and_huge_files_are_sent_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    files = {
        "a.js": SCRIPT,  # smallest: best quality
        "b.js": SCRIPT + b"//b\n",  # best quality too, using up the budget
        "c.js": SCRIPT + b"//cc\n",  # over the budget: fast quality
        "big.js": SCRIPT * 3,  # too big for the best quality
        "huge.js": SCRIPT * 6,  # too big to compress at all
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    monkeypatch.setattr(upload, "BROTLI_BEST_MAX_BYTES", len(SCRIPT) * 2)
    monkeypatch.setattr(upload, "BROTLI_BEST_BUDGET", len(SCRIPT) * 2 + 4)
    monkeypatch.setattr(upload, "COMPRESS_MAX_BYTES", len(SCRIPT) * 4)
    storage = LocalStorage(tmp_path / "storage")

    uploaded = upload_output(files_in(out), storage, "", tmp_path)
    storage.close()

    def sibling(name: str) -> bytes:
        return (tmp_path / "storage" / f"{name}.br").read_bytes()

    assert sibling("a.js") == brotli.compress(files["a.js"], quality=11)
    assert sibling("b.js") == brotli.compress(files["b.js"], quality=11)
    assert sibling("c.js") == brotli.compress(files["c.js"], quality=5)
    assert sibling("big.js") == brotli.compress(files["big.js"], quality=5)
    assert uploaded.files["huge.js"].encodings == ()
    assert uploaded.files["huge.js"].size == len(files["huge.js"])
    assert uploaded.files["huge.js"].sha256 == hashlib.sha256(files["huge.js"]).hexdigest()


def test_a_local_write_failure_is_a_storage_error(tmp_path: Path) -> None:
    out = make_output(tmp_path / "out")
    blocker = tmp_path / "storage"
    blocker.write_text("a file where the storage directory should be")
    storage = LocalStorage(blocker)

    with pytest.raises(StorageError, match="failed"):
        upload_output(files_in(out), storage, PREFIX, tmp_path, workers=1)
    storage.close(cancel=True)


class RecordingStorage:
    """Does each upload at once, and records the order in which they finished."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.finished: list[str] = []
        self.headers: dict[str, Headers] = {}
        self.bodies: dict[str, bytes] = {}
        self.fail_on = fail_on
        self.closed_with: bool | None = None

    def put(self, key: str, source: Path, headers: Headers) -> Pending:
        future: Future[None] = Future()
        if self.fail_on and key.endswith(self.fail_on):
            future.set_exception(StorageError(f"uploading {key} failed: refused"))
            return future
        self.bodies[key] = source.read_bytes()
        self.headers[key] = headers
        self.finished.append(key)
        future.set_result(None)
        return future

    def close(self, *, cancel: bool = False) -> None:
        self.closed_with = cancel


def test_the_manifest_is_written_last(tmp_path: Path) -> None:
    out = make_output(tmp_path / "out")
    storage = RecordingStorage()

    uploaded = upload_output(files_in(out), storage, PREFIX, tmp_path)
    write_manifest(storage, PREFIX + "manifest.json", {"files": {"a": 1}}, tmp_path)

    assert storage.finished[-1] == PREFIX + "manifest.json"
    assert len(storage.finished) == len(uploaded.files) + uploaded.siblings + 1
    assert json.loads(storage.bodies[PREFIX + "manifest.json"]) == {"files": {"a": 1}}
    assert storage.headers[PREFIX + "manifest.json"] == Headers(
        "application/json; charset=utf-8", REVALIDATE
    )
    assert storage.headers[PREFIX + "index.html.br"] == Headers(
        "text/html; charset=utf-8", REVALIDATE, "br"
    )


def test_a_failed_upload_stops_everything(tmp_path: Path) -> None:
    out = make_output(tmp_path / "out")
    storage = RecordingStorage(fail_on="logo.png")

    with pytest.raises(StorageError, match=r"logo\.png failed: refused"):
        upload_output(files_in(out), storage, PREFIX, tmp_path)


# --- S3 -------------------------------------------------------------------------------------


@pytest.fixture
def s3() -> Iterator[Any]:
    with fake_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="sites")
        yield client


def test_upload_to_s3(tmp_path: Path, s3: Any) -> None:
    out = make_output(tmp_path / "out")
    storage = open_storage("s3://sites/deployments/")

    uploaded = upload_output(files_in(out), storage, PREFIX, tmp_path)
    write_manifest(storage, PREFIX + "manifest.json", {"version": 1}, tmp_path)
    storage.close()

    base = "deployments/" + PREFIX
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket="sites", Prefix=base)["Contents"]}
    assert len(keys) == len(uploaded.files) + uploaded.siblings + 1
    script = s3.head_object(Bucket="sites", Key=base + "assets/index-Bx7a9kQe.js")
    assert script["ContentType"] == "text/javascript; charset=utf-8"
    assert script["CacheControl"] == IMMUTABLE
    assert "ContentEncoding" not in script
    compressed = s3.get_object(Bucket="sites", Key=base + "assets/index-Bx7a9kQe.js.br")
    assert compressed["ContentEncoding"] == "br"
    assert compressed["ContentType"] == "text/javascript; charset=utf-8"
    assert brotli.decompress(compressed["Body"].read()) == SCRIPT
    gzipped = s3.get_object(Bucket="sites", Key=base + "index.html.gz")
    assert gzipped["ContentEncoding"] == "gzip"
    assert gzipped["CacheControl"] == REVALIDATE
    assert gzip.decompress(gzipped["Body"].read()) == (out / "index.html").read_bytes()
    manifest = s3.get_object(Bucket="sites", Key=base + "manifest.json")
    assert json.loads(manifest["Body"].read()) == {"version": 1}
    assert s3.head_object(Bucket="sites", Key=base + "logo.png")["ContentType"] == "image/png"


def test_an_s3_failure_is_a_storage_error(tmp_path: Path, s3: Any) -> None:
    out = make_output(tmp_path / "out")
    storage = open_storage("s3://no-such-bucket")

    with pytest.raises(StorageError, match="NoSuchBucket"):
        upload_output(files_in(out), storage, PREFIX, tmp_path)
    storage.close(cancel=True)


def test_upload_to_an_s3_compatible_endpoint(tmp_path: Path) -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="compat")
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "index.html").write_bytes(b"<p>hi</p>")
        storage = open_storage("s3://compat", endpoint_url=endpoint)

        upload_output(files_in(tmp_path / "out"), storage, PREFIX, tmp_path)
        storage.close()

        head = client.head_object(Bucket="compat", Key=PREFIX + "index.html")
        assert head["ContentType"] == "text/html; charset=utf-8"
        client.close()
    finally:
        server.stop()


# --- storage URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("file:///srv/storage", LocalStorage),
        ("file://localhost/srv/storage", LocalStorage),
        ("s3://bucket", S3Storage),
        ("s3://bucket/some/prefix/", S3Storage),
    ],
)
def test_open_storage(url: str, kind: type) -> None:
    storage = open_storage(url)

    assert isinstance(storage, kind)
    storage.close()


@pytest.mark.parametrize(
    "url", ["https://bucket", "file://otherhost/dir", "file://", "s3://", "s3:///prefix"]
)
def test_open_storage_refuses_other_urls(url: str) -> None:
    with pytest.raises(SpecError, match="storage URL must be"):
        open_storage(url)


def test_s3_keys_carry_the_bucket_prefix(tmp_path: Path, s3: Any) -> None:
    (tmp_path / "a.txt").write_text("a")
    for url, key in [("s3://sites", "x/a.txt"), ("s3://sites/p/q", "p/q/x/a.txt")]:
        storage = open_storage(url)
        storage.put("x/a.txt", tmp_path / "a.txt", Headers("text/plain", REVALIDATE)).result()
        storage.close()
        assert s3.get_object(Bucket="sites", Key=key)["Body"].read() == b"a"


def test_compression_can_be_turned_off(tmp_path: Path) -> None:
    out = make_output(tmp_path / "out")
    storage = RecordingStorage()

    uploaded = upload_output(files_in(out), storage, PREFIX, tmp_path, compress=False)

    assert uploaded.siblings == 0
    assert all(record.encodings == () for record in uploaded.files.values())
    assert sorted(storage.finished) == sorted(PREFIX + path for path in uploaded.files)
    assert (
        uploaded.files["index.html"].sha256
        == hashlib.sha256((out / "index.html").read_bytes()).hexdigest()
    )
