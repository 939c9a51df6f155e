"""Choose the store `SCALEMESH_STORAGE_URL` names: a directory or an S3 bucket."""

from __future__ import annotations

from app.settings_parts import StorageSettings
from app.storage import Storage
from app.storage.local import LocalStorage
from app.storage.s3 import S3Storage, s3_client


def storage_from_settings(settings: StorageSettings) -> Storage:
    if settings.scheme == "file":
        return LocalStorage(settings.local_root)
    # boto3 reads credentials and region from the standard AWS_* variables itself.
    return S3Storage(s3_client(settings.endpoint_url), settings.bucket, settings.prefix)
