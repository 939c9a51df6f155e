"""The skip decision's test fixtures: a two-site monorepo in git, and a build cloned and detected
as the decision finds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builder import skipping
from builder.detect import Plan
from builder.pipeline import Build
from builder.siteconfig.records import SiteConfig
from builder.spec import BuildSpec
from tests.support.builder import PATH, CapturingSink, make_repo, make_spec, unconfined_build
from tests.support.git import git


def monorepo(tmp_path: Path) -> tuple[Path, str, str]:
    """Two sites and docs; a second commit that changes only apps/a (and its sha)."""
    repo, first = make_repo(
        tmp_path / "repo",
        files={
            "index.html": "<p>root",
            "apps/a/index.html": "<p>a",
            "apps/b/index.html": "<p>b",
            "packages/shared/util.js": "export {}",
            "docs/readme.md": "docs",
        },
    )
    (repo / "apps/a/index.html").write_text("<p>a, again")
    git(repo, "commit", "-q", "-am", "touch a")
    return repo, first, git(repo, "rev-parse", "HEAD")


def prepared(
    tmp_path: Path, spec: BuildSpec, config: SiteConfig | None = None, *, path: str = PATH
) -> tuple[Build, Plan, CapturingSink]:
    """A build cloned and detected, as the skip decision finds it."""
    sink = CapturingSink()
    build = unconfined_build(tmp_path, spec, sink, path=path)
    build.clone()
    plan = build.detect()
    # After detection, which reads the repository's own file (none here) into it.
    build.config = config or SiteConfig()
    return build, plan, sink


def decide(
    tmp_path: Path, config: SiteConfig | None = None, **overrides: Any
) -> tuple[str | None, CapturingSink]:
    path = overrides.pop("path", PATH)
    repo, first, second = monorepo(tmp_path)
    values: dict[str, Any] = {"previous_sha": first, **overrides}
    spec = make_spec(repo, second, tmp_path / "storage", **values)
    build, plan, sink = prepared(tmp_path, spec, config, path=path)
    return skipping.skip_reason(build, plan), sink
