"""End to end: skipped builds through the GitHub App, the real builder under the local runner,
and what GitHub, the API, the aliases and the metrics say of them.

A monorepo with two projects on one repository (root directories apps/a and apps/b): a push
touching only apps/a builds a and skips b.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.settings import Settings
from tests.support.git import head
from tests.support.pushed_repo import pushed_repo

SITES = {"apps/a/index.html": "<p>a", "apps/b/index.html": "<p>b", "index.html": "<p>root"}


def test_a_push_touching_one_project_of_a_monorepo_builds_only_that_one(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    with pushed_repo(make_settings, database_url, tmp_path / "mono", SITES) as mono:
        mono.project("a", production_branch="main", root_directory="apps/a")
        mono.project("b", production_branch="main", root_directory="apps/b")

        # The first push builds both: there is nothing to compare with yet.
        first = head(mono.repo)
        mono.push(first)
        assert mono.told(first, "a")["state"] == "success"
        assert mono.told(first, "b")["state"] == "success"
        [b_live] = mono.deployments("b")
        assert b_live["state"] == "ready"

        second = mono.commit({"apps/a/index.html": "<p>a, again"})
        mono.push(second)

        told_a, told_b = mono.told(second, "a"), mono.told(second, "b")
        [a_new, _] = mono.deployments("a")
        [b_skipped, _] = mono.deployments("b")
        why = f"no file under apps/b/ changed since {first[:7]} (1 file(s) changed elsewhere)"
        assert a_new["state"] == "ready"
        assert told_a["description"].startswith("Deployed to ")
        assert b_skipped["state"] == "skipped"
        assert b_skipped["error"] == why
        assert b_skipped["error_code"] is None
        # Success, so that a required check does not block the pull request.
        assert told_b == {
            "state": "success",
            "context": "scalemesh/b",
            "description": f"Skipped: {why}",
            "target_url": b_skipped["log_url"],
        }
        # Production still serves b's first deployment; a's moved to the new one.
        assert mono.production("b") == b_live["id"]
        assert mono.production("a") == a_new["id"]
        log = mono.log(b_skipped["id"])
        assert f"Skipped: {why}. Nothing was deployed; what was live stays live." in log
        # Its GitHub Deployment (made while it was queued or building) ends inactive: GitHub
        # keeps showing the live one as active (none is made if GitHub first hears of it skipped).
        made_for_b = [
            made
            for made in mono.github.deployments.values()
            if made.request["ref"] == second
            and made.request["environment"] == "Production"
            and made.request["description"].startswith("b:")
        ]
        assert all(made.statuses[-1]["state"] == "inactive" for made in made_for_b)
