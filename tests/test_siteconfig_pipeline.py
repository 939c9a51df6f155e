"""The config file in real builds: it sets what the build runs (under the project's settings),
its env reaches the commands under the project's, the log and the manifest tell where each
value came from, and a bad file fails the build naming its line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builder.spec import MANIFEST
from tests.support.builder import deployed, failure, make_repo, make_spec, run

BUILD = "sh -c 'mkdir -p out && cp index.html out/ && printf %s \"$API_URL $SHARED\" > out/env.txt'"
CONFIG: dict[str, Any] = {
    "buildCommand": BUILD,
    "outputDirectory": "out",
    "cleanUrls": True,
    "redirects": [{"source": "/old", "destination": "/", "permanent": False}],
    "env": {
        "production": {"API_URL": "https://prod.example.com", "SHARED": "from-file"},
        "preview": {"API_URL": "https://preview.example.com"},
    },
}


def _repo(tmp_path: Path, files: dict[str, str | bytes]) -> tuple[Path, str]:
    return make_repo(tmp_path / "repo", "static", files)


def test_the_file_drives_the_build_and_the_project_wins(tmp_path: Path) -> None:
    repo, sha = _repo(tmp_path, {"scalemesh.json": json.dumps(CONFIG, indent=2)})
    spec = make_spec(
        repo,
        sha,
        tmp_path / "storage",
        target="production",
        branch="main",
        install_command="true",
        env={"SHARED": "from-project"},
        env_scopes={"SHARED": "production"},
    )

    ok, sink = run(spec)

    assert ok, failure(sink)
    assert (deployed(tmp_path) / "env.txt").read_text() == "https://prod.example.com from-project"
    lines = sink.lines("detect")
    assert lines[0] == "Config file: scalemesh.json"
    assert "  buildCommand: " + BUILD + " (scalemesh.json)" in lines
    assert "  installCommand: true (project)" in lines
    assert "  outputDirectory: out (scalemesh.json)" in lines
    assert "  cleanUrls: true (scalemesh.json)" in lines
    assert "Rules from scalemesh.json: 1 redirects, 0 rewrites, 0 headers" in lines
    assert "Env: API_URL (scalemesh.json: production), SHARED (production)" in lines
    manifest = json.loads((deployed(tmp_path) / MANIFEST).read_text())
    assert manifest["config"]["file"] == "scalemesh.json"
    assert manifest["config"]["fields"]["outputDirectory"] == {
        "value": "out",
        "source": "scalemesh.json",
    }
    assert manifest["config"]["env"] == {
        "API_URL": "scalemesh.json: production",
        "SHARED": "production",
    }
    assert manifest["config"]["warnings"] == []
    assert manifest["rules"] == {
        "semantics": "vercel",
        "source": "scalemesh.json",
        "clean_urls": True,
        "trailing_slash": None,
        "redirects": [{"source": "/old", "destination": "/", "status": 307, "force": False}],
        "rewrites": [],
        "headers": [],
    }
    assert "from-project" not in json.dumps(manifest)


def test_a_preview_gets_the_preview_env(tmp_path: Path) -> None:
    repo, sha = _repo(tmp_path, {"scalemesh.json": json.dumps(CONFIG)})
    spec = make_spec(repo, sha, tmp_path / "storage", target="preview", install_command="true")

    ok, sink = run(spec)

    assert ok, failure(sink)
    assert (deployed(tmp_path) / "env.txt").read_text() == "https://preview.example.com "


def test_a_build_without_a_file_says_so_and_records_detection(tmp_path: Path) -> None:
    repo, sha = _repo(tmp_path, {})

    ok, sink = run(make_spec(repo, sha, tmp_path / "storage"))

    assert ok
    lines = sink.lines("detect")
    assert lines[0] == "Config file: none (no scalemesh.json, vercel.json or netlify.toml)"
    assert "  framework: static (detected)" in lines
    assert "Env: no variables" in lines
    manifest = json.loads((deployed(tmp_path) / MANIFEST).read_text())
    assert manifest["config"]["file"] is None
    assert manifest["config"]["fields"]["outputDirectory"] == {"value": ".", "source": "detected"}
    assert "rules" not in manifest


def test_warnings_reach_the_log_and_the_manifest(tmp_path: Path) -> None:
    vercel = '{\n  "functions": {"api/x.js": {}},\n  "cleanUrls": true\n}'
    repo, sha = _repo(tmp_path, {"vercel.json": vercel})

    ok, sink = run(make_spec(repo, sha, tmp_path / "storage"))

    assert ok
    warning = (
        "vercel.json:2: functions (serverless functions) are not supported: "
        "Scale Mesh serves static files only"
    )
    assert f"Warning: {warning}" in sink.lines("detect")
    manifest = json.loads((deployed(tmp_path) / MANIFEST).read_text())
    assert manifest["config"]["warnings"] == [warning]
    assert manifest["rules"]["clean_urls"] is True


def test_the_files_root_directory_is_where_the_site_is_built(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "netlify.toml": '[build]\nbase = "site"\n',
        "site/index.html": "<p>from site",
    }
    repo, sha = make_repo(tmp_path / "repo", files=files)

    ok, sink = run(make_spec(repo, sha, tmp_path / "storage"))

    assert ok, failure(sink)
    assert "Root directory: site" in sink.lines("detect")
    assert "  rootDirectory: site (netlify.toml)" in sink.lines("detect")
    assert (deployed(tmp_path) / "index.html").read_text() == "<p>from site"


def test_a_bad_file_fails_the_build_at_its_line(tmp_path: Path) -> None:
    text = '{\n  "redirects": [\n    {"source": "old", "destination": "/"}\n  ]\n}'
    repo, sha = _repo(tmp_path, {"scalemesh.json": text})

    ok, sink = run(make_spec(repo, sha, tmp_path / "storage"))

    assert not ok
    assert failure(sink) == "detect failed: scalemesh.json:3: redirects[0].source must start with /"
    assert not (deployed(tmp_path) / MANIFEST).exists()
