"""Reading config files in tests: a repository on disk with given files, read as a build would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builder.siteconfig.nodes import ConfigError
from builder.siteconfig.reading import read_config
from builder.siteconfig.records import SiteConfig
from builder.spec import BuildSpec

SHA = "a" * 40

FULL: dict[str, Any] = {
    # Every field of scalemesh.json, each set.
    "$schema": "https://scalemesh.example/schema/scalemesh.json",
    "buildCommand": "npm run build:site",
    "installCommand": "npm ci --ignore-scripts",
    "outputDirectory": "site",
    "rootDirectory": "apps/web",
    "framework": "vite",
    "nodeVersion": "22",
    "ignoreCommand": "git diff --quiet HEAD^ HEAD .",
    "watchPaths": ["packages/ui", "package-lock.json"],
    "cleanUrls": True,
    "trailingSlash": False,
    "redirects": [
        {"source": "/old/:slug", "destination": "/new/:slug"},
        {"source": "/temporary", "destination": "/here", "permanent": False},
        {"source": "/see", "destination": "https://example.com/", "statusCode": 303},
        {
            "source": "/beta",
            "destination": "/beta-home",
            "has": [
                {"type": "cookie", "key": "beta", "value": "1"},
                {"type": "host", "value": "a.b"},
            ],
            "missing": [{"type": "header", "key": "x-skip"}],
        },
    ],
    "rewrites": [{"source": "/app/(.*)", "destination": "/app/index.html"}],
    "headers": [
        {
            "source": "/(.*)",
            "headers": [
                {"key": "X-Frame-Options", "value": "DENY"},
                {"key": "X-Empty", "value": ""},
            ],
        }
    ],
    "env": {
        "production": {"API_URL": "https://api.example.com", "MODE": "prod"},
        "preview": {"API_URL": "https://staging.example.com", "DEBUG": "1"},
        "branches": {"feature/x": {"DEBUG": "2", "ONLY_X": "yes"}},
    },
    "previews": {
        "enabled": True,
        "branches": {"include": ["feature/*"], "exclude": ["feature/wip-*"]},
    },
}


def spec(**overrides: Any) -> BuildSpec:
    """A build spec with only what reading a config looks at set."""
    values: dict[str, Any] = {
        "deployment_id": "dpl-config",
        "project_id": 1,
        "git_url": "file:///nowhere",
        "sha": SHA,
        "storage_url": "file:///nowhere",
    }
    return BuildSpec(**(values | overrides))


def write(repo: Path, files: dict[str, str | bytes | dict[str, Any]]) -> Path:
    """`files` written under `repo` (a dict as JSON, indented: one key a line)."""
    repo.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            path.write_text(json.dumps(content, indent=2))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return repo


def read(
    tmp_path: Path, files: dict[str, str | bytes | dict[str, Any]], **overrides: Any
) -> SiteConfig:
    """The config a build of `spec(**overrides)` reads from a repository holding `files`."""
    repo = write(tmp_path / "repo", files)
    return read_config(repo, spec(**overrides))


def refusal(
    tmp_path: Path, files: dict[str, str | bytes | dict[str, Any]], **overrides: Any
) -> str:
    """The error reading `files` gives."""
    with pytest.raises(ConfigError) as caught:
        read(tmp_path, files, **overrides)
    return str(caught.value)
