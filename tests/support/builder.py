"""The builder's tests' building blocks: fixture sites in git, build specs, captured log events.

`run()` runs the real pipeline on a spec and returns what it logged; `fake_git()` makes a PATH
whose `git` misbehaves on purpose.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder import pipeline
from builder.buildlog import Log
from builder.confine import Confine, Confinement, Unconfined, given
from builder.logsink import Masker, StdoutSink
from builder.pipeline import Build
from builder.spec import BuildSpec
from builder.upload import LocalStorage, Storage
from tests.support.git import git

SITES = Path(__file__).parent.parent / "fixtures" / "sites"
DEPLOYMENT_ID = "dpl-test"
PROJECT_ID = 7
PATH = os.environ["PATH"]
TOKEN = "ghs_S3cr3tT0kenValue0123456789abcdefABCD"
"""A clone token as GitHub mints them: the tests check it never leaks."""


def make_repo(
    path: Path, site: str | None = None, files: dict[str, str | bytes] | None = None
) -> tuple[Path, str]:
    """A git repository at `path` with a fixture site and/or `files`, committed; and its sha."""
    if site is not None:
        shutil.copytree(SITES / site, path)
    path.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "fixture")
    return path, git(path, "rev-parse", "HEAD")


def npm_env(tmp_path: Path) -> dict[str, str]:
    """Project env vars that keep npm off the network and out of the real home directory."""
    return {
        "npm_config_cache": str(tmp_path / "npm-cache"),
        "npm_config_offline": "true",
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        "npm_config_update_notifier": "false",
    }


def make_spec(repo: Path, sha: str, storage: Path, **overrides: Any) -> BuildSpec:
    values: dict[str, Any] = {
        "deployment_id": DEPLOYMENT_ID,
        "project_id": PROJECT_ID,
        "git_url": repo.as_uri(),
        "sha": sha,
        "storage_url": storage.as_uri(),
    }
    values.update(overrides)
    return BuildSpec(**values)


def parse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class CapturingSink:
    """A real `StdoutSink` (masking included) writing into memory."""

    masker: Masker = field(default_factory=lambda: Masker(()))
    buffer: io.StringIO = field(default_factory=io.StringIO)
    closed: bool = False

    def __post_init__(self) -> None:
        self._sink = StdoutSink(self.masker, self.buffer)

    def emit(self, event: dict[str, Any]) -> None:
        self._sink.emit(event)

    def close(self) -> None:
        self._sink.close()
        self.closed = True

    @property
    def events(self) -> list[dict[str, Any]]:
        return parse_events(self.buffer.getvalue())

    def lines(self, step: str | None = None) -> list[str]:
        return [
            event["text"]
            for event in self.events
            if event["type"] == "line" and (step is None or event["step"] == step)
        ]


def run(
    spec: BuildSpec,
    storage: Storage | None = None,
    confinement: Confinement | None = None,
    *,
    confine: Confine | None = None,
    work_root: Path | None = None,
    toolchains: Path | None = None,
) -> tuple[bool, CapturingSink]:
    """The pipeline, its commands unconfined unless a `confinement` (or a `confine` factory,
    as the sandbox needs) is given."""
    sink = CapturingSink(Masker.for_spec(spec))
    storage = storage or LocalStorage(Path(spec.storage_url.removeprefix("file://")))
    try:
        ok = pipeline.run(
            spec,
            sink,
            storage,
            path=PATH,
            confine=confine or given(confinement or Unconfined(spec.limits)),
            work_root=work_root,
            toolchains=toolchains,
        )
    finally:
        storage.close()
    return ok, sink


def unconfined_build(
    tmp_path: Path, spec: BuildSpec, sink: CapturingSink, *, path: str = PATH
) -> Build:
    """A `Build` of `spec` working in `tmp_path / "work"`, logging to `sink`, its commands
    unconfined: for a test that runs its steps one by one."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    return Build(
        spec,
        Log(sink),
        LocalStorage(tmp_path / "storage"),
        path=path,
        workdir=workdir,
        confine=given(Unconfined(spec.limits)),
    )


def deployed(tmp_path: Path) -> Path:
    return tmp_path / "storage" / "__outputs" / str(PROJECT_ID) / DEPLOYMENT_ID


def steps(sink: CapturingSink) -> list[tuple[str, str, bool | None]]:
    return [
        (event["step"], event["status"], event.get("ok"))
        for event in sink.events
        if event["type"] == "step"
    ]


def failure(sink: CapturingSink) -> str:
    end = sink.events[-1]
    assert end["type"] == "end"
    assert end["ok"] is False
    error: str = end["error"]
    return error


def static_spec(
    tmp_path: Path, files: dict[str, str | bytes] | None = None, **overrides: Any
) -> BuildSpec:
    repo, sha = make_repo(tmp_path / "repo", "static", files)
    return make_spec(repo, sha, tmp_path / "storage", **overrides)


def fake_git(tmp_path: Path, script: str) -> str:
    """A PATH whose `git` runs `script` (with the real git as $REAL_GIT) before anything else."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    real = next(
        Path(directory) / "git"
        for directory in PATH.split(os.pathsep)
        if (Path(directory) / "git").is_file()
    )
    wrapper = bin_dir / "git"
    wrapper.write_text(f"#!/bin/sh\nREAL_GIT={real}\n{script}\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return f"{bin_dir}{os.pathsep}{PATH}"
