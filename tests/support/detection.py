"""Checkouts for the detection tests: files written under a directory, and a plan summed up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builder.detect import Plan

NPM_LOCK = json.dumps({"lockfileVersion": 3, "packages": {}})


def package(
    *,
    build: bool = True,
    deps: dict[str, str] | None = None,
    dev: dict[str, str] | None = None,
    manager: str | None = None,
) -> str:
    """A package.json, with a build script unless `build` is False (`manager`: its
    `packageManager`)."""
    data: dict[str, Any] = {"name": "site", "scripts": {"build": "x"} if build else {}}
    if deps:
        data["dependencies"] = deps
    if dev:
        data["devDependencies"] = dev
    if manager:
        data["packageManager"] = manager
    return json.dumps(data)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def summary(plan: Plan, repo: Path) -> dict[str, Any]:
    """What a plan says, commands as one string each, directories relative to `repo`."""
    return {
        "framework": plan.framework,
        "manager": plan.package_manager,
        "install": " ".join(plan.install) if plan.install else None,
        "build": " ".join(plan.build) if plan.build else None,
        "output": plan.output_directory,
        "output_path": plan.output_path,
        "install_dir": plan.install_dir.relative_to(repo.resolve()).as_posix(),
        "root": plan.root.relative_to(repo.resolve()).as_posix(),
        "reason": plan.reason,
    }
