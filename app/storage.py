"""Object storage for deployment outputs and archived logs: a directory or an S3 bucket.

Both implementations satisfy `Storage`; vendor errors are translated here and never escape.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread

from app.settings import StorageSettings


class StorageError(RuntimeError):
    """The store could not be reached or refused the operation."""


class Storage(Protocol):
    async def check(self) -> None:
        """Raise `StorageError` unless the store can be read and written."""


class LocalStorage:
    """A directory on this machine (`file://`); fine for one machine, not for replicas."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def check(self) -> None:
        def probe() -> None:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=self.root, prefix=".health-"):
                    pass
            except OSError as exc:
                raise StorageError(f"{self.root} is not writable: {exc.strerror}") from None

        await anyio.to_thread.run_sync(probe)


class S3Storage:
    """A bucket (and optional key prefix) on S3 or an S3-compatible store."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    async def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        def probe() -> None:
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "error")
                raise StorageError(f"bucket {self.bucket}: {code}") from None
            except BotoCoreError as exc:
                raise StorageError(f"bucket {self.bucket}: {exc}") from None

        await anyio.to_thread.run_sync(probe)


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client; S3-compatible endpoints get checksums only when required."""
    import boto3
    from botocore.config import Config

    config = Config(max_pool_connections=64, retries={"max_attempts": 5, "mode": "standard"})
    if endpoint_url:
        # MinIO, R2 and B2 reject the CRC32 headers boto3 >= 1.36 sends by default.
        config = config.merge(
            Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
        )
    return boto3.client("s3", endpoint_url=endpoint_url or None, config=config)


def storage_from_settings(settings: StorageSettings) -> Storage:
    if settings.scheme == "file":
        return LocalStorage(settings.local_root)
    # boto3 reads credentials and region from the standard AWS_* variables itself.
    return S3Storage(s3_client(settings.endpoint_url), settings.bucket, settings.prefix)
