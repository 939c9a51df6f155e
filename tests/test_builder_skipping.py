"""The builder's skip decision: previews globs and the monorepo diff, on real git repositories,
and a skipped build's log and storage (the ignoreCommand: `test_builder_skipping_ignore.py`)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from builder import skipping
from builder.logsink import basic_auth
from builder.siteconfig.records import Previews, SiteConfig
from builder.spec import MANIFEST, SKIPPED, STEPS
from tests.support.builder import (
    TOKEN,
    deployed,
    fake_git,
    make_repo,
    make_spec,
    run,
    steps,
)
from tests.support.git import git
from tests.support.skipping import decide, monorepo, prepared

GONE_SHA = "0123456789abcdef" * 2 + "01234567"


# --- previews -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "branch", "previews", "expected"),
    [
        ("production", "main", Previews(enabled=False), None),
        ("preview", "feature/x", Previews(), None),
        ("preview", "feature/x", Previews(enabled=False), "previews are off for branch feature/x"),
        ("preview", "", Previews(enabled=False), "previews are off"),
        ("preview", "", Previews(include=("release/*",)), None),
        (
            "preview",
            "dependabot/npm/vite",
            Previews(exclude=("renovate/*", "dependabot/*")),
            "previews are off for branch dependabot/npm/vite (it matches exclude 'dependabot/*')",
        ),
        (
            "preview",
            "feature/x",
            Previews(include=("release/*", "staging")),
            "previews are off for branch feature/x (it matches no include: 'release/*', 'staging')",
        ),
        ("preview", "release/2.0", Previews(include=("release/*",)), None),
        (
            "preview",
            "release/wip",
            Previews(include=("release/*",), exclude=("*/wip",)),
            "previews are off for branch release/wip (it matches exclude '*/wip')",
        ),
    ],
)
def test_previews_globs(target: str, branch: str, previews: Previews, expected: str | None) -> None:
    assert skipping.previews_reason(target, branch, previews) == expected


def test_a_preview_of_an_excluded_branch_is_skipped_and_nothing_deployed(tmp_path: Path) -> None:
    repo, sha = make_repo(tmp_path / "repo", "static")
    spec = make_spec(repo, sha, tmp_path / "storage", target="preview", branch="wip/x")
    build, plan, sink = prepared(tmp_path, spec, SiteConfig(previews=Previews(exclude=("wip/*",))))

    reason = skipping.skip_reason(build, plan)
    assert reason == "previews are off for branch wip/x (it matches exclude 'wip/*')"
    skipping.record(build, reason)

    assert json.loads((deployed(tmp_path) / SKIPPED).read_text()) == {"reason": reason}
    assert not (deployed(tmp_path) / MANIFEST).exists()
    assert sink.lines()[-1] == (
        f"Skipped: {reason}. Nothing was deployed; what was live stays live."
    )


# --- monorepos ------------------------------------------------------------------------------


def test_a_push_that_changes_nothing_under_the_root_directory_is_skipped(tmp_path: Path) -> None:
    reason, sink = decide(tmp_path, root_directory="apps/b")

    assert reason is not None
    assert reason.startswith("no file under apps/b/ changed since ")
    assert reason.endswith(" (1 file(s) changed elsewhere)")
    assert any(
        line.startswith("Fetching the last ready deployment's commit") for line in sink.lines()
    )


def test_a_push_that_changes_the_root_directory_builds(tmp_path: Path) -> None:
    reason, sink = decide(tmp_path, root_directory="apps/a")

    assert reason is None
    assert any(line.startswith("1 changed file(s) under apps/a/ since ") for line in sink.lines())


def test_watch_paths_build_a_project_whose_root_did_not_change(tmp_path: Path) -> None:
    config = SiteConfig(watch_paths=("packages/shared", "apps/a/index.html"))

    reason, sink = decide(tmp_path, config, root_directory="apps/b")

    assert reason is None
    assert any(
        "under apps/b/, packages/shared/, apps/a/index.html/" in line for line in sink.lines()
    )


def test_without_a_previous_deployment_the_monorepo_check_builds(tmp_path: Path) -> None:
    reason, sink = decide(tmp_path, root_directory="apps/b", previous_sha="")

    assert reason is None
    assert (
        "No ready deployment of this target to compare with: building "
        "(the monorepo check and ignoreCommand need one)"
    ) in sink.lines()


def test_a_previous_commit_that_is_gone_builds(tmp_path: Path) -> None:
    reason, sink = decide(tmp_path, root_directory="apps/b", previous_sha=GONE_SHA)

    assert reason is None
    assert f"Could not fetch {GONE_SHA[:7]} (was it force-pushed away?): building" in sink.lines()


def test_a_fetch_that_times_out_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(skipping, "FETCH_TIMEOUT", 0)

    reason, sink = decide(tmp_path, root_directory="apps/b")

    assert reason is None
    assert any(line.startswith("Could not fetch ") for line in sink.lines())


def test_the_same_commit_again_builds(tmp_path: Path) -> None:
    repo, _, second = monorepo(tmp_path)
    spec = make_spec(
        repo, second, tmp_path / "storage", root_directory="apps/b", previous_sha=second
    )
    build, plan, sink = prepared(tmp_path, spec)

    assert skipping.skip_reason(build, plan) is None
    assert "The last ready deployment has this same commit: building it again" in sink.lines()


def test_a_failing_git_diff_builds(tmp_path: Path) -> None:
    path = fake_git(
        tmp_path,
        'if [ "$1" = diff ]; then echo "diff broke" >&2; exit 3; fi\nexec "$REAL_GIT" "$@"',
    )

    reason, sink = decide(tmp_path, root_directory="apps/b", path=path)

    assert reason is None
    assert "git diff exited with code 3: diff broke" in sink.lines()
    assert "Could not tell which files changed: building" in sink.lines()


def test_a_git_diff_that_cannot_run_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def hangs(*args: Any, **kwargs: Any) -> None:
        raise subprocess.TimeoutExpired(args[0], skipping.DIFF_TIMEOUT)

    repo, first, second = monorepo(tmp_path)
    spec = make_spec(
        repo, second, tmp_path / "storage", root_directory="apps/b", previous_sha=first
    )
    build, plan, sink = prepared(tmp_path, spec)
    monkeypatch.setattr(skipping.subprocess, "run", hangs)

    assert skipping.skip_reason(build, plan) is None
    assert any(line.startswith("git diff could not run: ") for line in sink.lines())


def test_odd_file_names_are_read_whole(tmp_path: Path) -> None:
    repo, first = make_repo(tmp_path / "repo", files={"index.html": "<p>b"})
    (repo / "apps/b").mkdir(parents=True)
    (repo / 'apps/b/new\nline "é".txt').write_text("x")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "odd")
    spec = make_spec(repo, git(repo, "rev-parse", "HEAD"), tmp_path / "storage")
    build, _, _ = prepared(tmp_path, spec)
    assert skipping._fetch(build, first)

    assert skipping.changed_files(build, first) == ['apps/b/new\nline "é".txt']


@pytest.mark.parametrize(
    ("path", "roots", "expected"),
    [
        ("apps/b/x.js", ["apps/b"], True),
        ("apps/bb/x.js", ["apps/b"], False),
        ("apps/b", ["apps/b/"], True),
        ("README.md", ["."], True),
        ("README.md", ["/"], True),
        ("packages/ui/button.tsx", ["packages/*/button.tsx"], True),
        ("packages/ui/button.tsx", ["apps/b", "docs"], False),
    ],
)
def test_watched(path: str, roots: Sequence[str], expected: bool) -> None:
    assert skipping.watched(path, roots) is expected


def test_a_root_outside_the_checkout_is_no_root() -> None:
    assert skipping._root_of(Path("/work/repo"), Path("/work")) is None


# --- the pipeline ---------------------------------------------------------------------------


def test_a_skipped_build_ends_ok_after_detect_with_no_manifest(tmp_path: Path) -> None:
    repo, first, second = monorepo(tmp_path)
    spec = make_spec(
        repo, second, tmp_path / "storage", root_directory="apps/b", previous_sha=first
    )

    ok, sink = run(spec)

    assert ok
    assert [step for step, status, _ in steps(sink) if status == "end"] == list(STEPS[:2])
    assert sink.events[-1] == {"type": "end", "ok": True, "ts": sink.events[-1]["ts"]}
    skipped = json.loads((deployed(tmp_path) / SKIPPED).read_text())
    assert skipped["reason"].startswith(f"no file under apps/b/ changed since {first[:7]}")
    assert not (deployed(tmp_path) / MANIFEST).exists()
    assert not (deployed(tmp_path) / "index.html").exists()
    assert sink.lines()[-1] == (
        f"Skipped: {skipped['reason']}. Nothing was deployed; what was live stays live."
    )


def test_the_other_project_of_the_monorepo_deploys(tmp_path: Path) -> None:
    repo, first, second = monorepo(tmp_path)
    spec = make_spec(
        repo, second, tmp_path / "storage", root_directory="apps/a", previous_sha=first
    )

    ok, sink = run(spec)

    assert ok, sink.events[-1]
    assert (deployed(tmp_path) / MANIFEST).exists()
    assert not (deployed(tmp_path) / SKIPPED).exists()


def test_a_build_with_no_root_directory_nor_ignore_command_fetches_nothing(
    tmp_path: Path,
) -> None:
    reason, sink = decide(tmp_path)

    assert reason is None
    assert not any("last ready deployment" in line for line in sink.lines())


@pytest.mark.parametrize(
    ("target", "skipped"), [("preview", True), ("production", False)], ids=["preview", "production"]
)
def test_previews_off_in_scalemesh_json_skip_previews_only(
    tmp_path: Path, target: str, skipped: bool
) -> None:
    repo, sha = make_repo(
        tmp_path / "repo", "static", {"scalemesh.json": '{"previews": {"enabled": false}}'}
    )
    spec = make_spec(repo, sha, tmp_path / "storage", target=target, branch="feature/x")

    ok, sink = run(spec)

    assert ok, sink.events[-1]
    assert (deployed(tmp_path) / SKIPPED).exists() is skipped
    assert (deployed(tmp_path) / MANIFEST).exists() is not skipped
    if skipped:
        reason = json.loads((deployed(tmp_path) / SKIPPED).read_text())["reason"]
        assert reason == "previews are off for branch feature/x"


def test_the_previous_commit_is_fetched_with_the_token_in_the_environment_only(
    tmp_path: Path,
) -> None:
    calls = tmp_path / "calls"
    path = fake_git(
        tmp_path,
        f'if [ "$1" = fetch ]; then printf "argv %s\\n" "$*" >> {calls}; env >> {calls}; fi\n'
        'exec "$REAL_GIT" "$@"',
    )

    reason, sink = decide(tmp_path, root_directory="apps/b", token=TOKEN, path=path)

    assert reason is not None
    recorded = calls.read_text()
    argv = [line for line in recorded.splitlines() if line.startswith("argv ")]
    assert len(argv) == 2  # the clone's fetch, then the previous commit's
    assert argv[-1].endswith(
        f"--depth 1 --no-tags origin {git(tmp_path / 'repo', 'rev-parse', 'HEAD~1')}"
    )
    assert not any(TOKEN in line or basic_auth(TOKEN) in line for line in argv)
    assert recorded.count(f"GIT_CONFIG_VALUE_0=Authorization: Basic {basic_auth(TOKEN)}") == 2
    assert TOKEN not in sink.buffer.getvalue()
