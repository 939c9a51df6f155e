"""A local runner on the fake builder, its bus, its work root and the environment it passes on."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.runners.local import LocalRunner
from tests.support.runners import (
    FAKE_BUILDER,
    FAKE_SANDBOX,
    FakeBus,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the local runner uses asyncio's subprocess API


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


@pytest.fixture
def work_root(tmp_path: Path) -> Path:
    return tmp_path / "builds"


@pytest.fixture
def base_env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "SCALEMESH_TEST_BASE": "from-base"}


@pytest.fixture
async def local(
    bus: FakeBus, work_root: Path, base_env: dict[str, str]
) -> AsyncIterator[LocalRunner]:
    runner = LocalRunner(
        bus,
        base_env,
        work_root,
        command=[sys.executable, str(FAKE_BUILDER)],
        sandbox=FAKE_SANDBOX,
        cancel_grace=0.3,
    )
    yield runner
    await runner.aclose()
