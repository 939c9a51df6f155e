"""Reading a build cache back from both storages (`CacheStorage.get`): local storage links the
object where it can (a later write replaces it, never changes the link) and copies it where it
cannot; S3 downloads it, answers False for none and reports other failures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from builder.upload import Headers, LocalStorage, S3Storage, StorageError
from tests.support.ports import refused_port
from tests.support.s3_bucket import BUCKET, aws, bucket

__all__ = ["aws", "bucket"]  # fixtures


def test_local_storage_reads_back_what_it_has(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "storage")
    (tmp_path / "storage" / "__cache" / "7").mkdir(parents=True)
    (tmp_path / "storage" / "__cache" / "7" / "a.tar.zst").write_bytes(b"abc")

    assert storage.get("__cache/7/a.tar.zst", tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == b"abc"
    assert not storage.get("__cache/7/missing.tar.zst", tmp_path / "none")
    with pytest.raises(StorageError, match="reading __cache/7 from"):
        storage.get("__cache/7", tmp_path / "dir")


def test_local_storage_links_a_cache_and_a_later_put_leaves_the_link_as_it_was(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path / "storage")
    source = tmp_path / "new.tar.zst"
    source.write_bytes(b"first")
    storage.put("__cache/7/a.tar.zst", source, Headers("application/zstd", "no-store")).result()

    assert storage.get("__cache/7/a.tar.zst", tmp_path / "read")
    stored = tmp_path / "storage" / "__cache" / "7" / "a.tar.zst"
    assert (tmp_path / "read").stat().st_ino == stored.stat().st_ino  # no bytes copied
    source.write_bytes(b"second")
    storage.put("__cache/7/a.tar.zst", source, Headers("application/zstd", "no-store")).result()
    assert (tmp_path / "read").read_bytes() == b"first"
    assert stored.read_bytes() == b"second"


def test_local_storage_copies_a_cache_where_it_cannot_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path / "storage")
    (tmp_path / "storage" / "__cache").mkdir(parents=True)
    (tmp_path / "storage" / "__cache" / "a.tar.zst").write_bytes(b"abc")

    def cross_device(source: object, target: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)

    assert storage.get("__cache/a.tar.zst", tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == b"abc"
    assert not storage.get("__cache/missing.tar.zst", tmp_path / "none")


def test_s3_storage_downloads_a_cache_and_answers_false_when_there_is_none(
    bucket: Any, tmp_path: Path
) -> None:
    bucket.put_object(Bucket=BUCKET, Key="prod/__cache/7/a.tar.zst", Body=b"zst")
    storage = S3Storage(BUCKET, "prod/")
    try:
        found = storage.get("__cache/7/a.tar.zst", tmp_path / "a")
        missing = storage.get("__cache/7/b.tar.zst", tmp_path / "b")
    finally:
        storage.close()

    assert found
    assert (tmp_path / "a").read_bytes() == b"zst"
    assert not missing
    assert not (tmp_path / "b").exists()


def test_s3_storage_reports_other_failures(aws: None, tmp_path: Path) -> None:
    storage = S3Storage(BUCKET, endpoint_url=f"http://127.0.0.1:{refused_port()}")
    try:
        with pytest.raises(StorageError, match=r"downloading __cache/7/a\.tar\.zst failed"):
            storage.get("__cache/7/a.tar.zst", tmp_path / "a")
    finally:
        storage.close()


def test_s3_storage_reports_an_error_answer(
    bucket: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = S3Storage(BUCKET)
    denied = ClientError({"Error": {"Code": "SlowDown", "Message": "slow"}}, "HeadObject")

    class Transfer:
        def result(self) -> None:
            raise denied

    monkeypatch.setattr(storage._manager, "download", lambda *args, **kwargs: Transfer())
    try:
        with pytest.raises(StorageError, match="SlowDown"):
            storage.get("__cache/7/a.tar.zst", tmp_path / "a")
    finally:
        storage.close()
    assert boto3  # the real client stays untouched
