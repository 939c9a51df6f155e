"""Sites without Node built for real: Hugo (the builder's own binary) and MkDocs (from PyPI,
through the egress proxy) in the bubblewrap sandbox, static folders, the `framework` override."""

from __future__ import annotations

import ipaddress
import json
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder import generators, pipeline
from builder import sandbox as sandbox_module
from builder.confine import Confine, Unconfined, given
from builder.confinement_choice import confinement_for
from builder.egress import refusal
from builder.sandbox import find_bwrap
from builder.spec import MANIFEST, BuildLimits
from builder.upload import LocalStorage
from proxy.site import Site
from tests.support.builder import (
    PATH,
    CapturingSink,
    deployed,
    failure,
    make_repo,
    make_spec,
    run,
    static_spec,
)
from tests.support.detection import package
from tests.support.proxy_site import get, uploaded
from tests.support.sandbox import build_dirs, sandbox
from tests.support.sandbox import run as run_launch

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def work_root() -> Iterator[Path]:
    """A work root the sandbox's own host uid can pass through (pytest's is 0700)."""
    with tempfile.TemporaryDirectory(prefix="scalemesh-generators-") as made:
        Path(made).chmod(0o711)
        yield Path(made)


def sandboxed(*hosts: str) -> Confine:
    """The local runner's sandbox, its egress proxy letting `hosts` through where this machine
    reaches them at a non-public address (a CI gateway; see `gateway_networks`)."""
    found = {info[4][0] for host in hosts for info in socket.getaddrinfo(host, 443)}
    gateways = [str(address) for address in map(ipaddress.ip_address, found) if refusal(address)]
    config = {"kind": "bubblewrap", "bwrap": str(find_bwrap()), "allow_networks": gateways}
    return confinement_for(None, json.dumps(config), BuildLimits())


async def page(site: Site, path: str) -> str:
    response = await get(site, path)
    assert response.status == 200, (path, response.status)
    return bytes(response.body).decode()


async def test_a_hugo_site_builds_in_the_sandbox_and_is_served(
    tmp_path: Path, work_root: Path
) -> None:
    repo, sha = make_repo(tmp_path / "repo", "hugo")

    ok, sink = run(
        make_spec(repo, sha, tmp_path / "storage"), confine=sandboxed(), work_root=work_root
    )

    assert ok, failure(sink)
    assert "Detected hugo: found hugo.toml, no package.json" in sink.lines("detect")
    assert "Output directory: public" in sink.lines("detect")
    assert "No install step: there is no package.json" in sink.lines("install")
    assert "Running hugo --gc" in sink.lines("build")
    site = await uploaded(deployed(tmp_path))
    home = await page(site, "/")
    assert "<h1>Scale Mesh on Hugo</h1>" in home
    assert "<strong>Hugo</strong> in the build" in home
    assert '<a href="/docs/setup/">Setup</a>' in home
    assert "<h1>Setup</h1>" in await page(site, "/docs/setup/")
    [stylesheet] = [name for name in site.files if name.endswith(".css")]
    assert "color: #0a7" in await page(site, f"/{stylesheet}")  # SCSS: Hugo extended


async def test_a_mkdocs_site_installs_mkdocs_from_pypi_in_the_sandbox_and_is_served(
    tmp_path: Path, work_root: Path
) -> None:
    repo, sha = make_repo(tmp_path / "repo", "mkdocs")
    confine = sandboxed("pypi.org", "files.pythonhosted.org")

    ok, sink = run(make_spec(repo, sha, tmp_path / "storage"), confine=confine, work_root=work_root)

    assert ok, failure(sink)
    assert "Detected mkdocs: found mkdocs.yml, no package.json" in sink.lines("detect")
    assert any(
        "Successfully installed" in line and "mkdocs-" in line for line in sink.lines("install")
    )
    site = await uploaded(deployed(tmp_path))
    assert "Built by <strong>MkDocs</strong>" in await page(site, "/")
    assert '<h1 id="setup">Setup</h1>' in await page(site, "/guide/setup/")


async def test_a_public_folder_deploys_as_it_is(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "README.md": "not deployed",
        "public/index.html": "<h1>plain</h1>",
        "public/about/index.html": "<h1>about</h1>",
    }
    repo, sha = make_repo(tmp_path / "repo", files=files)

    ok, sink = run(make_spec(repo, sha, tmp_path / "storage", output_directory="public"))

    assert ok, failure(sink)
    assert "Detected static: public/ has index.html, no package.json" in sink.lines("detect")
    assert "No build step: static site" in sink.lines("build")
    site = await uploaded(deployed(tmp_path))
    assert await page(site, "/") == "<h1>plain</h1>"
    assert await page(site, "/about/") == "<h1>about</h1>"
    assert (await get(site, "/README.md")).status == 404


async def test_any_folder_given_as_output_directory_deploys_as_it_is(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path / "repo", files={"www/hello.html": "<p>hello"})

    ok, sink = run(make_spec(repo, sha, tmp_path / "storage", output_directory="www"))

    assert ok, failure(sink)
    assert (
        "Detected static: no package.json and no build command: www is deployed as it is"
        in sink.lines("detect")
    )
    assert await page(await uploaded(deployed(tmp_path)), "/hello") == "<p>hello"  # clean URLs


def test_the_sandbox_runs_the_builders_hugo_from_path_at_a_path_of_its_own() -> None:
    directory = generators.hugo_directory()
    assert directory is not None
    with build_dirs() as build, sandbox(build) as confinement:
        path = generators.tool_path("/usr/bin:/bin")
        launch = confinement.launch(
            ["sh", "-c", "echo $PATH; command -v hugo; hugo version; ls /"],
            cwd=build.repo,
            env=build.env(PATH=path),
        )
        done = run_launch(launch)

    said = done.stdout.splitlines()
    assert said[:2] == ["/run/scalemesh/tools/hugo:/usr/bin:/bin", "/run/scalemesh/tools/hugo/hugo"]
    assert said[2].startswith("hugo v0.168.0")
    assert "+extended" in said[2]  # SCSS
    assert not any(str(directory) in line for line in said)  # the host's path is not shown


def test_the_config_files_framework_overrides_detection_in_the_log(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "package.json": package(deps={"vite": "5"}),
        "scalemesh.json": '{"framework": "static"}',
    }

    ok, sink = run(static_spec(tmp_path, files, install_command="true"))

    assert ok
    assert (
        "Detected static (npm): framework is static, index.html at the repository root"
        in sink.lines("detect")
    )
    assert "No build step: package.json has no build script" in sink.lines("build")
    manifest = json.loads((deployed(tmp_path) / MANIFEST).read_text())
    assert manifest["framework"] == "static"
    assert set(manifest["files"]) >= {"index.html", "style.css"}


def test_an_unknown_framework_in_the_config_fails_the_detect_step(tmp_path: Path) -> None:
    ok, sink = run(static_spec(tmp_path, {"scalemesh.json": '{"framework": "jekyll"}'}))

    assert not ok
    assert failure(sink).startswith("detect failed: framework 'jekyll' is not one Scale Mesh knows")


def test_a_hugo_the_sandboxs_uid_cannot_reach_is_left_out_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hidden = tmp_path / "private" / "hugo" / "binaries"  # pytest's tmp_path is 0700
    hidden.mkdir(parents=True)
    monkeypatch.setattr(sandbox_module, "tool_directories", lambda: [hidden])
    with build_dirs() as build, sandbox(build) as confinement:
        launch = confinement.launch(
            ["sh", "-c", "echo $PATH; test -e /run/scalemesh/tools || echo no tools"],
            cwd=build.repo,
            env=build.env(PATH=f"{hidden}:/usr/bin"),
        )
        done = run_launch(launch)

    assert done.stdout.splitlines() == ["/usr/bin", "no tools"]
    [warning] = build.lines
    assert warning.startswith(f"Warning: hugo is not available to builds: uid {build.uid} cannot")


def test_without_a_venv_module_in_python3_mkdocs_uses_the_builders_python(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text("#!/bin/sh\necho 'No module named venv (fake)' >&2\nexit 1\n")
    (fake / "python3").chmod(0o755)
    repo, sha = make_repo(tmp_path / "repo", "mkdocs")
    spec = make_spec(repo, sha, tmp_path / "storage")
    sink = CapturingSink()
    storage = LocalStorage(tmp_path / "storage")

    ok = pipeline.run(
        spec, sink, storage, path=f"{fake}:{PATH}", confine=given(Unconfined(spec.limits))
    )
    storage.close()

    assert ok, failure(sink)
    assert "No module named venv (fake)" in sink.lines("install")
    assert (deployed(tmp_path) / "guide/setup/index.html").is_file()
