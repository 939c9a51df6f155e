"""The build cache's quieter paths through the pipeline (a static site: no install): nothing to
save, a tag, a storage that cannot read back, read and write failures, many hostile entries at
once."""

from __future__ import annotations

import os
import re
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from app.storage import check_key
from builder import build_cache
from builder.build_cache import branches_read, lockfile_key
from builder.cache_archive import EXPAND_FACTOR
from builder.cache_keys import cache_key
from builder.confine import ConfinementError, Unconfined
from builder.detect import detect
from builder.spec import BuildLimits, BuildSpec
from builder.upload import Headers, LocalStorage, Pending, StorageError
from tests.support.build_cache import archive, cache_lines, stored
from tests.support.builder import run as build
from tests.support.builder import static_spec


class WriteOnly:
    """A storage as the builder's tests fake it: `put` only, no `get`."""

    def __init__(self, root: Path) -> None:
        self.inner = LocalStorage(root)

    def put(self, key: str, source: Path, headers: Headers) -> Pending:
        return self.inner.put(key, source, headers)

    def close(self, *, cancel: bool = False) -> None:
        self.inner.close(cancel=cancel)


class Failing(LocalStorage):
    """Reads fail, or a cache write fails; the deployment's own files are written."""

    def __init__(self, root: Path, *, reads: bool = False, writes: bool = False) -> None:
        super().__init__(root)
        self.reads, self.writes = reads, writes

    def get(self, key: str, target: Path) -> bool:
        if self.reads:
            raise StorageError(f"reading {key} failed: the disk is on fire")
        return super().get(key, target)

    def put(self, key: str, source: Path, headers: Headers) -> Pending:
        if self.writes and key.startswith("__cache/"):
            failed: Future[None] = Future()
            failed.set_exception(StorageError(f"writing {key} failed: quota"))
            return _Raising(failed)
        return super().put(key, source, headers)


class _Raising:
    def __init__(self, future: Future[None]) -> None:
        self._future = future

    def result(self) -> object:
        return self._future.result()

    def cancel(self) -> object:
        return self._future.cancel()


class StopsOnce(Unconfined):
    """Its first `stop_all` (the cache's) fails; the upload's succeeds."""

    calls = 0

    def stop_all(self) -> None:
        self.calls += 1
        if self.calls == 1:
            raise ConfinementError("a process survived")


def read_order(
    branch: str, production: str, *, from_fork: bool = False, base: str = ""
) -> list[str]:
    spec = BuildSpec(
        deployment_id="d",
        project_id=1,
        git_url="file:///r",
        sha="0" * 40,
        storage_url="file:///s",
        branch=branch,
        production_branch=production,
        from_fork=from_fork,
        base_branch=base,
    )
    return [branch for branch, _ in branches_read(spec)]


def test_branches_read_own_then_production() -> None:
    assert read_order("feature", "main") == ["feature", "main"]
    assert read_order("main", "main") == ["main"]
    assert read_order("feature", "main", from_fork=True) == ["main"]
    assert read_order("", "") == []


def test_branches_read_own_then_the_pull_requests_base_then_production() -> None:
    assert read_order("feature", "main", base="develop") == ["feature", "develop", "main"]
    assert read_order("feature", "main", base="main") == ["feature", "main"]
    assert read_order("feature", "main", base="feature") == ["feature", "main"]
    # A fork's branch name is the fork's own: never read, even when it names one of ours.
    assert read_order("develop", "main", from_fork=True, base="develop") == ["develop", "main"]
    assert read_order("feature", "main", from_fork=True, base="develop") == ["develop", "main"]
    assert read_order("", "main", from_fork=True, base="") == ["main"]
    assert read_order("", "", base="develop") == ["develop"]


@pytest.mark.parametrize(
    "branch",
    ["../x", "../../8/main", "/etc/passwd", "a/../../b", "..", "%2e%2e/x", "a\\..\\b", "é/ü"],
)
def test_no_branch_name_leaves_its_projects_cache_prefix(branch: str) -> None:
    # A branch name is whatever a push (or a fork's pull request) says it is.
    key = cache_key(7, branch)

    assert re.fullmatch(r"__cache/7/[0-9a-f]{32}\.tar\.zst", key), key
    assert check_key(key) == key


def test_branch_names_that_differ_in_case_or_slashes_never_share_a_cache() -> None:
    names = ["main", "Main", "MAIN", "a/b", "a-b", "a_b", "a//b", "a/b/", "/a/b", "a\\b", "a.b"]

    assert len({cache_key(7, name) for name in names}) == len(names)
    assert cache_key(7, "main") != cache_key(8, "main")


def test_a_build_reads_only_its_project_generations_caches(tmp_path: Path) -> None:
    # A cache of an earlier project that had this id (SQLite gives it again), and of this one.
    earlier = stored(tmp_path, "main")
    earlier.parent.mkdir(parents=True)
    archive(earlier, [("file", "repo/earlier.txt", b"the deleted project's")])
    spec = static_spec(tmp_path, branch="main", production_branch="main", cache_generation="2")

    ok, sink = build(spec)

    assert ok
    assert cache_lines(sink)[0] == "Build cache: miss (none for branch 'main')"
    assert cache_key(7, "main", "2") != cache_key(7, "main", "1") != cache_key(7, "main")
    assert cache_key(7, "main", "2").startswith("__cache/7/2/")


def test_a_cache_unpacking_past_its_bound_is_not_restored(tmp_path: Path) -> None:
    # An archive a build of this branch wrote: a few kB of zstd, tens of MB unpacked.
    target = stored(tmp_path, "main")
    target.parent.mkdir(parents=True)
    half = b"\0" * ((EXPAND_FACTOR << 20) // 2 + 1)
    archive(target, [("file", "repo/a.bin", half), ("file", "repo/b.bin", half)])
    spec = static_spec(
        tmp_path, branch="main", production_branch="main", limits=BuildLimits(cache_mb=1)
    )

    ok, sink = build(spec)

    assert ok
    key = target.relative_to(tmp_path / "storage")
    assert cache_lines(sink)[0] == (
        f"Warning: the build cache {key} is unreadable (it unpacks to more than "
        f"{EXPAND_FACTOR << 20} bytes); building without it"
    )


def test_a_static_site_has_nothing_to_save(tmp_path: Path) -> None:
    ok, sink = build(static_spec(tmp_path, branch="main", production_branch="main"))

    assert ok
    assert cache_lines(sink) == [
        "Build cache: miss (none for branch 'main')",
        "Build cache: nothing to save (no dependencies or framework caches)",
    ]
    assert not (tmp_path / "storage" / "__cache").exists()


def test_a_tag_reads_nothing_and_saves_nothing(tmp_path: Path) -> None:
    ok, sink = build(static_spec(tmp_path))

    assert ok
    assert cache_lines(sink) == [
        "Build cache: miss (none for a build of no branch)",
        "Build cache: not saved (a tag or commit has no branch to keep it for)",
    ]


def test_a_storage_that_cannot_read_back_has_no_cache(tmp_path: Path) -> None:
    spec = static_spec(tmp_path, branch="main", production_branch="main")

    ok, sink = build(spec, WriteOnly(tmp_path / "storage"))

    assert ok
    assert cache_lines(sink) == []


def test_a_failing_read_is_a_warning_and_a_miss(tmp_path: Path) -> None:
    spec = static_spec(tmp_path, branch="feature", production_branch="main")

    ok, sink = build(spec, Failing(tmp_path / "storage", reads=True))

    assert ok
    key = stored(tmp_path, "feature").relative_to(tmp_path / "storage")
    assert cache_lines(sink)[0] == (
        f"Warning: the build cache {key} could not be read: reading {key} failed: "
        "the disk is on fire"
    )
    assert cache_lines(sink)[2] == "Build cache: miss (none for branch 'feature' or branch 'main')"


BUILD_LEAVING_NODE_MODULES = (
    '{"buildCommand": "sh -c \'mkdir -p node_modules/x dist && echo hi > dist/index.html\'"}'
)


def with_node_modules(tmp_path: Path, **overrides: Any) -> Any:
    """A static site whose build command leaves a node_modules behind (something to save)."""
    return static_spec(
        tmp_path,
        {"scalemesh.json": BUILD_LEAVING_NODE_MODULES},
        branch="main",
        production_branch="main",
        **overrides,
    )


def test_a_failing_write_is_a_warning_and_the_build_deploys(tmp_path: Path) -> None:
    ok, sink = build(with_node_modules(tmp_path), Failing(tmp_path / "storage", writes=True))

    assert ok, sink.lines()
    key = stored(tmp_path, "main").relative_to(tmp_path / "storage")
    assert cache_lines(sink)[-1] == (f"Warning: build cache not saved: writing {key} failed: quota")


def test_a_process_that_survives_stops_the_save_not_the_build(tmp_path: Path) -> None:
    spec = with_node_modules(tmp_path)

    ok, sink = build(spec, confinement=StopsOnce(BuildLimits()))

    assert ok, sink.lines()
    assert cache_lines(sink)[-1] == "Warning: build cache not saved: a process survived"
    assert not stored(tmp_path, "main").exists()


def test_an_archive_that_cannot_be_written_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build_cache, "write_archive", full)

    ok, sink = build(with_node_modules(tmp_path))

    assert ok, sink.lines()
    assert cache_lines(sink)[-1] == (
        "Warning: build cache not saved: [Errno 28] No space left on device"
    )


def test_many_hostile_entries_are_each_refused_and_counted(tmp_path: Path) -> None:
    target = stored(tmp_path, "main")
    target.parent.mkdir(parents=True)
    archive(target, [("symlink", f"repo/evil{n}", "/etc") for n in range(13)])

    ok, sink = build(static_spec(tmp_path, branch="main", production_branch="main"))

    assert ok
    lines = cache_lines(sink)
    assert (
        lines[0] == "Warning: build cache entry refused: 'repo/evil0': a symlink leaving its root"
    )
    assert lines[10] == "Warning: 3 more build cache entries refused"
    assert lines[11].startswith("Build cache: hit")
    assert (
        "lockfile key none (no lockfile) differs: node_modules not restored; 0 files" in lines[11]
    )


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "gone"])
def test_a_lockfile_the_build_swapped_for_no_plain_file_has_no_key(
    tmp_path: Path, kind: str
) -> None:
    (tmp_path / "package.json").write_text('{"name": "x"}')
    (tmp_path / "package-lock.json").write_text("{}")
    plan = detect(tmp_path)
    # What a build could leave behind by the time its cache is saved.
    (tmp_path / "package-lock.json").unlink()
    if kind == "symlink":
        (tmp_path / "package-lock.json").symlink_to("/etc/passwd")
    elif kind == "fifo":
        os.mkfifo(tmp_path / "package-lock.json")
    elif kind == "directory":
        (tmp_path / "package-lock.json").mkdir()

    assert lockfile_key(plan) is None


def test_the_lockfile_key_covers_package_json_too(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"name": "x"}')
    (tmp_path / "package-lock.json").write_text("{}")
    before = lockfile_key(detect(tmp_path))
    (tmp_path / "package.json").write_text('{"name": "x", "dependencies": {"y": "1"}}')

    assert before is not None
    assert lockfile_key(detect(tmp_path)) not in (None, before)


def test_the_lockfile_key_covers_the_toolchain(tmp_path: Path) -> None:
    """node_modules built under one Node (native addons) never comes back under another."""
    (tmp_path / "package.json").write_text('{"name": "site"}')
    (tmp_path / "package-lock.json").write_text("{}")
    plan = detect(tmp_path)

    node20 = lockfile_key(plan, "/usr/bin")
    node22 = lockfile_key(plan, "/cache/node/22.11.0/bin:/usr/bin")

    assert None not in (node20, node22)
    assert node20 != node22
    assert lockfile_key(plan, "/usr/bin") == node20


def test_npms_record_counts_only_as_a_regular_file_inside_the_checkout(tmp_path: Path) -> None:
    checkout, outside = tmp_path / "checkout", tmp_path / "outside"
    (outside / "node_modules").mkdir(parents=True)
    (outside / "node_modules" / ".package-lock.json").write_text("{}")
    checkout.mkdir()
    assert not build_cache._npm_made(checkout, checkout)  # no node_modules
    (checkout / "node_modules").symlink_to(outside / "node_modules")
    assert not build_cache._npm_made(checkout, checkout)  # a symlink out: never trusted
    (checkout / "node_modules").unlink()
    (checkout / "node_modules" / ".package-lock.json").mkdir(parents=True)
    assert not build_cache._npm_made(checkout, checkout)  # not a regular file
    (checkout / "node_modules" / ".package-lock.json").rmdir()
    (checkout / "node_modules" / ".package-lock.json").write_text("{}")
    assert build_cache._npm_made(checkout, checkout)
