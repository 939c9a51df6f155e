"""End to end: a repository's scalemesh.json skips builds (its ignoreCommand, its previews globs),
through the GitHub App, with real local builds in the sandbox, and GitHub told why."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from app.settings import Settings
from tests.support.api import bearer
from tests.support.git import head
from tests.support.pushed_repo import pushed_repo

# Skip when nothing but docs/ changed since the last ready deployment.
IGNORE = "git diff --quiet $SCALEMESH_PREVIOUS_SHA HEAD -- . ':(exclude)docs'"


def test_an_ignore_command_skips_a_docs_only_push_and_builds_a_site_change(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    files = {
        "index.html": "<p>site",
        "docs/guide.md": "# Guide",
        "scalemesh.json": json.dumps({"ignoreCommand": IGNORE}),
    }
    with pushed_repo(make_settings, database_url, tmp_path / "site", files) as site:
        site.project("site", production_branch="main")
        first = head(site.repo)
        site.push(first)
        assert site.told(first, "site")["state"] == "success"
        [live] = site.deployments("site")
        assert live["state"] == "ready"
        first_log = site.log(live["id"])
        assert "No ready deployment of this target to compare with: building" in first_log
        assert "to decide whether to build" not in first_log  # the ignoreCommand did not run

        docs = site.commit({"docs/guide.md": "# Guide, longer"})
        site.push(docs)
        told = site.told(docs, "site")
        [skipped, _] = site.deployments("site")

        why = f"the ignoreCommand {IGNORE!r} exited with code 0"
        assert skipped["state"] == "skipped"
        assert skipped["error"] == why
        assert told["state"] == "success"
        assert told["description"] == f"Skipped: {why}"
        assert site.production("site") == live["id"]
        log = site.log(skipped["id"])
        assert f"Running {IGNORE} (ignoreCommand of scalemesh.json) to decide whether to build" in (
            log
        )
        assert "The ignoreCommand exited with code 0: skipping this build" in log

        changed = site.commit({"index.html": "<p>site, changed"})
        site.push(changed)
        assert site.told(changed, "site")["state"] == "success"
        [built, _, _] = site.deployments("site")
        assert built["state"] == "ready"
        assert "The ignoreCommand exited with code 1: building" in site.log(built["id"])
        assert site.production("site") == built["id"]


def test_previews_off_for_a_branch_glob_skip_its_pushes(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    files = {
        "index.html": "<p>site",
        "scalemesh.json": json.dumps({"previews": {"branches": {"exclude": ["wip/*"]}}}),
    }
    with pushed_repo(make_settings, database_url, tmp_path / "site", files) as site:
        site.project("site", production_branch="main")
        sha = head(site.repo)

        site.push(sha, branch="wip/try")
        told = site.told(sha, "site")
        [skipped] = site.deployments("site")

        why = "previews are off for branch wip/try (it matches exclude 'wip/*')"
        assert skipped["state"] == "skipped", site.log(skipped["id"])
        assert skipped["target"] == "preview"
        assert skipped["error"] == why
        assert told["state"] == "success"
        assert told["description"] == f"Skipped: {why}"
        assert skipped["aliases"] == []
        response = site.client.get(f"/deployments/{skipped['id']}", headers=bearer(site.user_token))
        assert response.json()["state"] == "skipped"


def test_a_monorepo_apps_watch_paths_in_its_own_scalemesh_json(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    files = {
        "apps/a/index.html": "<p>a",
        "apps/b/index.html": "<p>b",
        "apps/b/scalemesh.json": json.dumps({"watchPaths": ["packages/shared"]}),
        "packages/shared/theme.css": "p {}",
    }
    with pushed_repo(make_settings, database_url, tmp_path / "mono", files) as mono:
        mono.project("a", production_branch="main", root_directory="apps/a")
        mono.project("b", production_branch="main", root_directory="apps/b")
        first = head(mono.repo)
        mono.push(first)
        assert mono.told(first, "a")["state"] == "success"
        assert mono.told(first, "b")["state"] == "success"
        [a_live] = mono.deployments("a")

        shared = mono.commit({"packages/shared/theme.css": "p { color: teal }"})
        mono.push(shared)

        told_a, told_b = mono.told(shared, "a"), mono.told(shared, "b")
        [a_skipped, _] = mono.deployments("a")
        [b_built, _] = mono.deployments("b")
        why = f"no file under apps/a/ changed since {first[:7]} (1 file(s) changed elsewhere)"
        assert (a_skipped["state"], a_skipped["error"]) == ("skipped", why)
        assert told_a["description"] == f"Skipped: {why}"
        assert b_built["state"] == "ready"
        assert told_b["description"].startswith("Deployed to ")
        assert "1 changed file(s) under apps/b/, packages/shared/ since " in mono.log(b_built["id"])
        assert mono.production("a") == a_live["id"]
        assert mono.production("b") == b_built["id"]
