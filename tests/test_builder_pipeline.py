"""The pipeline in process: steps and their events, and failures that stop everything.

The clone step, and where its token goes, are in `test_builder_clone.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builder import pipeline
from builder.confine import Unconfined, given
from builder.errors import Stopped
from builder.generators import tool_path
from builder.logsink import LogSinkError
from builder.spec import MANIFEST, STEPS, BuildLimits
from builder.toolchains.setup import TOOLCHAIN_ENV
from builder.upload import Headers, LocalStorage, Pending
from tests.support.builder import (
    DEPLOYMENT_ID,
    PATH,
    PROJECT_ID,
    TOKEN,
    CapturingSink,
    deployed,
    failure,
    make_repo,
    make_spec,
    run,
    static_spec,
    steps,
)

# --- success --------------------------------------------------------------------------------

UNCONFINED = Unconfined(BuildLimits())


def test_a_static_site_goes_through_every_step(tmp_path: Path) -> None:
    spec = static_spec(tmp_path, git_ref="main")

    ok, sink = run(spec)

    assert ok
    assert steps(sink) == [
        (step, status, ok) for step in STEPS for status, ok in (("start", None), ("end", True))
    ]
    events = sink.events
    assert events[-1]["type"] == "end"
    assert events[-1]["ok"] is True
    assert "error" not in events[-1]
    assert all(isinstance(event["ts"], float) for event in events)
    assert all(
        isinstance(event["duration_ms"], int) for event in events if event.get("status") == "end"
    )
    lines = sink.lines()
    assert f"Cloning {spec.git_url} at {spec.sha[:7]} (main)" in lines
    assert "Detected static: index.html at the repository root, no package.json" in lines
    assert "No install step: there is no package.json" in lines
    assert "No build step: static site" in lines
    assert "Uploading 2 files from ./" in lines
    assert "Uploaded 2 files (0.2 kB) and 0 compressed copies" in lines
    manifest = json.loads((deployed(tmp_path) / MANIFEST).read_text())
    assert manifest["framework"] == "static"
    assert manifest["output_directory"] == "."
    assert manifest["sha"] == spec.sha
    assert manifest["deployment_id"] == DEPLOYMENT_ID
    assert manifest["project_id"] == PROJECT_ID
    assert manifest["version"] == 1
    assert set(manifest["files"]) == {"index.html", "style.css"}  # and never .git
    assert set(manifest["steps"]) == set(STEPS)
    assert manifest["created_at"].endswith("Z")
    assert not (deployed(tmp_path) / ".git").exists()


def test_a_package_json_without_a_build_script_skips_the_build(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"package.json": "{}", "big.txt": "x" * 2_000_000}

    ok, sink = run(static_spec(tmp_path, files, install_command="true"))

    assert ok
    assert "No build step: package.json has no build script" in sink.lines("build")
    assert "Uploaded 4 files (2.0 MB) and 2 compressed copies" in sink.lines("upload")


def test_a_site_in_a_root_directory(tmp_path: Path) -> None:
    repo, sha = make_repo(
        tmp_path / "repo", files={"README.md": "monorepo", "apps/web/index.html": "<p>web"}
    )
    spec = make_spec(repo, sha, tmp_path / "storage", root_directory="apps/web")

    ok, sink = run(spec)

    assert ok
    assert "Root directory: apps/web" in sink.lines("detect")
    manifest = json.loads((deployed(tmp_path) / MANIFEST).read_text())
    assert list(manifest["files"]) == ["index.html"]


def test_the_sites_own_manifest_json_is_served_and_ours_kept_apart(tmp_path: Path) -> None:
    spec = static_spec(
        tmp_path, {"manifest.json": '{"name": "pwa"}', ".scalemesh/manifest.json": "forged"}
    )

    ok, sink = run(spec)

    assert ok
    assert "Skipped .scalemesh/: Scale Mesh keeps its own files there" in sink.lines("upload")
    manifest = json.loads((deployed(tmp_path) / MANIFEST).read_text())
    assert "manifest.json" in manifest["files"]
    assert (deployed(tmp_path) / "manifest.json").read_text() == '{"name": "pwa"}'
    assert ".scalemesh/manifest.json" not in manifest["files"]


def test_commands_run_with_a_scrubbed_env(tmp_path: Path) -> None:
    spec = static_spec(
        tmp_path,
        build_command="env",
        output_directory=".",
        token=TOKEN,
        env={
            "API_URL": "https://api.example.com",
            "LANG": "en_US.UTF-8",
            "SCALEMESH_BUILD_TOKEN": "smuggled",
            "AWS_SECRET_ACCESS_KEY": "smuggled",
            "HAS_TOKEN": f"x{TOKEN}x",
            "PATH": "/smuggled",
            "HOME": "/smuggled",
            "CI": "0",
            "NODE_EXTRA_CA_CERTS": "/etc/ssl/mine.pem",
        },
    )
    sink = CapturingSink()  # unmasked: the test must see what the command saw
    storage = LocalStorage(tmp_path / "storage")

    assert pipeline.run(spec, sink, storage, path=PATH, confine=given(UNCONFINED))
    storage.close()

    names = dict(line.split("=", 1) for line in sink.lines("build")[1:])
    assert sorted(names) == sorted(
        {"API_URL", "CI", "COREPACK_ENABLE_DOWNLOAD_PROMPT", "HOME", "LANG", "PATH"}
        | {"NODE_EXTRA_CA_CERTS", *TOOLCHAIN_ENV}
    )
    # Defaults for corepack and Node's CAs (builder.toolchains), the project's own winning.
    assert names["NODE_EXTRA_CA_CERTS"] == "/etc/ssl/mine.pem"
    assert names["COREPACK_INTEGRITY_KEYS"] == "0"
    assert names["PATH"] == tool_path(PATH)  # the builder's Hugo first
    assert names["CI"] == "1"
    assert names["COREPACK_ENABLE_DOWNLOAD_PROMPT"] == "0"
    assert names["LANG"] == "en_US.UTF-8"
    assert names["HOME"] != "/smuggled"
    assert "NODE_ENV" not in names


# --- failing steps stop everything ---------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "overrides", "error", "last_step"),
    [
        (
            {"package.json": '{"packageManager": "deno@2.0.0"}'},
            {},
            "detect failed: deno is not supported (packageManager in package.json); "
            "use npm, pnpm, yarn or bun",
            "detect",
        ),
        (
            {},
            {"install_command": "false"},
            "install failed: false exited with code 1",
            "install",
        ),
        (
            {},
            {"install_command": "sh -c 'kill -9 $$'"},
            "install failed: sh -c 'kill -9 $$' was killed by SIGKILL (did it pass the memory "
            "limit, 4096 MB? SCALEMESH_BUILD_MEMORY_MB)",
            "install",
        ),
        (
            {},
            {"install_command": "sh -c 'kill -40 $$'"},
            "install failed: sh -c 'kill -40 $$' was killed by signal 40",
            "install",
        ),
        (
            {},
            {"install_command": "no-such-tool --flag"},
            "install failed: cannot run no-such-tool: No such file or directory",
            "install",
        ),
        (
            {},
            {"install_command": "sleep 30", "timeout": 1},
            "install failed: sleep 30 timed out after 1 s (install and build together)",
            "install",
        ),
        (
            {},
            # Install and build share the budget: 1.2 s spent leaves the build 0.8 s.
            {"install_command": "sleep 1.2", "build_command": "sleep 1.5", "timeout": 2},
            "build failed: sleep 1.5 timed out after 2 s (install and build together)",
            "build",
        ),
        (
            {},
            {"output_directory": "public"},
            "upload failed: output directory public/ was not found after the build "
            "(set output_directory)",
            "upload",
        ),
        (
            {"package.json": '{"dependencies": {"next": "14"}}'},
            {"install_command": "true", "build_command": "true"},
            "upload failed: output directory out/ was not found after the build "
            "(set output_directory); Next.js writes out/ only with output: 'export' in "
            "next.config.js",
            "upload",
        ),
        (
            {},
            {"build_command": "mkdir -p dist/empty/.git"},
            "upload failed: output directory dist/ is empty after the build (set output_directory)",
            "upload",
        ),
        (
            {},
            {"build_command": "ln -s /tmp dist"},
            "upload failed: output directory dist/ points outside the repository",
            "upload",
        ),
    ],
    ids=[
        "unsupported package manager",
        "install exits non-zero",
        "install killed",
        "install killed by a real-time signal",
        "install command missing",
        "install times out",
        "build times out on the shared budget",
        "output directory missing",
        "next without static export",
        "output directory empty",
        "output directory outside the checkout",
    ],
)
def test_a_failing_step_stops_the_build_and_uploads_nothing(
    tmp_path: Path,
    files: dict[str, str | bytes],
    overrides: dict[str, Any],
    error: str,
    last_step: str,
) -> None:
    ok, sink = run(static_spec(tmp_path, files, **overrides))

    assert not ok
    assert failure(sink) == error
    assert steps(sink)[-2:] == [(last_step, "start", None), (last_step, "end", False)]
    assert [event["type"] for event in sink.events].count("end") == 1
    assert not deployed(tmp_path).exists()


class BrokenStorage:
    def put(self, key: str, source: Path, headers: Headers) -> Pending:
        raise RuntimeError("disk on fire")

    def close(self, *, cancel: bool = False) -> None:
        pass


def test_an_unexpected_error_still_ends_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok, sink = run(static_spec(tmp_path), BrokenStorage())

    assert not ok
    assert failure(sink) == "upload failed: internal error (RuntimeError: disk on fire)"
    assert "Traceback" in capsys.readouterr().err


def test_a_storage_failure_ends_the_log_and_writes_no_manifest(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file, not a directory")
    spec = static_spec(tmp_path)

    ok, sink = run(spec, LocalStorage(tmp_path / "blocked"))

    assert not ok
    assert failure(sink).startswith("upload failed: writing __outputs/")
    assert any(line.startswith("Error: writing __outputs/") for line in sink.lines("upload"))


class StoppingSink(CapturingSink):
    """Acts as if SIGTERM arrived when the install command is announced."""

    def emit(self, event: dict[str, Any]) -> None:
        super().emit(event)
        if str(event.get("text", "")).startswith("Running"):
            raise Stopped


def test_a_stopped_build_says_so(tmp_path: Path) -> None:
    sink = StoppingSink()
    spec = static_spec(tmp_path, install_command="true")

    assert not pipeline.run(
        spec, sink, LocalStorage(tmp_path / "storage"), path=PATH, confine=given(UNCONFINED)
    )
    assert failure(sink) == "install stopped: the build was cancelled"
    assert steps(sink)[-1] == ("install", "end", False)


class DeadSink:
    """A sink that takes `lives` events, then fails as a lost API or pipe does."""

    def __init__(self, lives: int = 0) -> None:
        self.lives = lives

    def emit(self, event: dict[str, Any]) -> None:
        if self.lives <= 0:
            raise LogSinkError("the API is gone")
        self.lives -= 1

    def close(self) -> None:
        pass


@pytest.mark.parametrize("lives", [0, 3], ids=["at once", "mid-build"])
def test_a_dead_log_sink_fails_loudly(tmp_path: Path, lives: int) -> None:
    with pytest.raises(LogSinkError, match="the API is gone"):
        pipeline.run(
            static_spec(tmp_path),
            DeadSink(lives),
            LocalStorage(tmp_path / "s"),
            path=PATH,
            confine=given(UNCONFINED),
        )
