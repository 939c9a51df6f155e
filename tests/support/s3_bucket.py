"""moto for the tests: `fake_aws` (any AWS service), and an S3 bucket (`aws`, `bucket`)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
from moto import mock_aws

BUCKET = "deployments"


@functools.cache
def _service_descriptions() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


@contextlib.contextmanager
def fake_aws() -> Iterator[None]:
    """moto's `mock_aws`, with AWS's service descriptions read once per process.

    `mock_aws` empties boto3's default session, so each test's clients would parse the S3
    description (megabytes of JSON) again, ~0.1 s a client; the descriptions never change, so
    every test's session shares one loader (as every client of one real process does).
    """
    with mock_aws():
        session = botocore.session.get_session()
        session.register_component("data_loader", _service_descriptions())
        boto3.setup_default_session(botocore_session=session)
        yield


@pytest.fixture
def aws() -> Iterator[None]:
    with fake_aws():
        yield


@pytest.fixture
def bucket(aws: None) -> Any:
    """A raw boto3 client on a moto bucket, for looking behind the adapter's back."""
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client
