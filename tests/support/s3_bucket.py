"""A moto S3 bucket for the storage tests: the `aws` and `bucket` fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

BUCKET = "deployments"


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def bucket(aws: None) -> Any:
    """A raw boto3 client on a moto bucket, for looking behind the adapter's back."""
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client
