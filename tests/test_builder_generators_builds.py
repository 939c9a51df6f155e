"""Sites without Node built for real: Hugo (the builder's own binary) and MkDocs (from PyPI,
through the egress proxy) in the bubblewrap sandbox, static folders, the `framework` override."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder import generators, pipeline
from builder.siteconfig.records import SiteConfig
from builder.spec import MANIFEST
from tests.support.builder import deployed, failure, run, static_spec
from tests.support.detection import package
from tests.support.sandbox import build_dirs, sandbox
from tests.support.sandbox import run as run_launch


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
    assert str(directory).split("/")[1] not in said[3:]  # the host's path is not shown


def test_the_config_files_framework_overrides_detection_in_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = pipeline.Build.clone

    def clone_and_read_config(build: pipeline.Build) -> None:
        clone(build)
        build.config = SiteConfig(source="scalemesh.json", framework="static")

    monkeypatch.setattr(pipeline.Build, "clone", clone_and_read_config)
    files: dict[str, str | bytes] = {"package.json": package(deps={"vite": "5"})}

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


def test_an_unknown_framework_in_the_config_fails_the_detect_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = pipeline.Build.clone

    def clone_and_read_config(build: pipeline.Build) -> None:
        clone(build)
        build.config = SiteConfig(source="scalemesh.json", framework="jekyll")

    monkeypatch.setattr(pipeline.Build, "clone", clone_and_read_config)

    ok, sink = run(static_spec(tmp_path))

    assert not ok
    assert failure(sink).startswith("detect failed: framework 'jekyll' is not one Scale Mesh knows")
