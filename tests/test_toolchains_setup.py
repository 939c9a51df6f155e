"""bun's package and version, and the install step's PATH: the Node (and bun) a build gets first
on it, said in the log; bun lockfiles as detection reads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builder.detect import detect
from builder.errors import BuildError
from builder.toolchains import bun
from builder.toolchains.registry import Registry, cache_root
from builder.toolchains.setup import prepare_toolchains
from tests.support.fake_registry import URL, FakeRegistry, bun_registry, node_registry


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return cache_root(tmp_path / "toolchains")


@pytest.mark.parametrize(
    ("files", "install", "build"),
    [
        ({"bun.lockb": ""}, "bun install --frozen-lockfile", "bun run build"),
        ({"bun.lock": ""}, "bun install --frozen-lockfile", "bun run build"),
        (
            {
                "package.json": json.dumps(
                    {"packageManager": "bun@1.1.38", "scripts": {"build": "x"}}
                )
            },
            "bun install",
            "bun run build",
        ),
    ],
)
def test_bun_lockfiles_are_installed_and_built_with_bun(
    tmp_path: Path, files: dict[str, str], install: str, build: str
) -> None:
    files = {"package.json": json.dumps({"scripts": {"build": "vite build"}}), **files}
    for name, text in files.items():
        (tmp_path / name).write_text(text)

    plan = detect(tmp_path)

    assert plan.package_manager == "bun"
    assert " ".join(plan.install or ()) == install
    assert " ".join(plan.build or ()) == build


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
