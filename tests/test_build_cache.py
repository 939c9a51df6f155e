"""The build cache through the real pipeline and real npm installs (one tiny dependency from
the registry): miss then hit, a changed lockfile, forks and new branches, the size cap, a
corrupt archive and a redeploy without cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builder.spec import BuildLimits
from tests.support.build_cache import (
    build,
    cache_lines,
    cache_site,
    lock_is_number_6,
    members,
    served,
    spec_of,
    stored,
)
from tests.support.builder import PROJECT_ID
from tests.support.git import git
from tests.support.toolchains import sandboxed

OFFLINE = {"npm_config_offline": "true"}
"""npm may not reach the registry: an install that succeeds took every package from the cache."""
NOTHING_TO_INSTALL = (
    "Build cache: node_modules is npm's own for this lockfile and package.json has no install "
    "scripts: nothing to install"
)


def test_the_second_build_restores_the_cache_and_installs_without_the_registry(
    tmp_path: Path,
) -> None:
    repo, sha = cache_site(tmp_path)

    first_ok, first = build(spec_of(tmp_path, repo, sha, 1))
    archive = members(stored(tmp_path, "main"))
    offline = spec_of(tmp_path, repo, sha, 2)
    second_ok, second = build(spec_of(tmp_path, repo, sha, 2, env={**offline.env, **OFFLINE}))

    assert first_ok, first.lines()
    assert cache_lines(first)[0] == "Build cache: miss (none for branch 'main')"
    key = f"__cache/{PROJECT_ID}/"
    assert cache_lines(first)[1].startswith(f"Build cache: saved {key}")
    assert "repo/node_modules/is-number/package.json" in archive["names"]
    assert "repo/.keep/builds" in archive["names"]  # scalemesh.json's `cache` path
    assert any(name.startswith("home/.npm/_cacache/") for name in archive["names"])
    assert archive["meta"]["branch"] == "main"
    assert len(archive["meta"]["lockfile"]) == 64
    assert second_ok, second.lines()
    (hit,) = [line for line in cache_lines(second) if line.startswith("Build cache: hit")]
    assert hit.startswith(
        f"Build cache: hit {stored(tmp_path, 'main').relative_to(tmp_path / 'storage')}"
    )
    assert f"lockfile key {archive['meta']['lockfile'][:16]} matches: node_modules restored" in hit
    assert "Running npm ci" in first.lines()
    # node_modules is npm's own for this lockfile and nothing of the package runs on install.
    assert NOTHING_TO_INSTALL in second.lines()
    assert "Running npm install" not in second.lines()
    assert "Running npm ci" not in second.lines()
    assert hit.endswith("the download caches are kept for the next save, unread")
    assert served(tmp_path, 2) == "<p>is-number 7.0.0, build 2</p>\n"
    # What the second build did not unpack, it saved again: the next lockfile change finds it.
    again = members(stored(tmp_path, "main"))
    assert _home(again, "home/.npm/_cacache/") == _home(archive, "home/.npm/_cacache/")
    assert set(_home(archive, "home/")) <= set(_home(again, "home/"))  # npm run adds a log
    assert "repo/node_modules/is-number/package.json" in again["names"]
    assert again["names"].index("repo/node_modules") < again["names"].index("home/.npm")
    # A changed package.json (a new key): npm ci runs, offline, from the download cache carried.
    package = json.loads((repo / "package.json").read_text())
    (repo / "package.json").write_text(json.dumps(package | {"description": "changed"}))
    git(repo, "commit", "-q", "-am", "a new key")
    third_ok, third = build(
        spec_of(tmp_path, repo, git(repo, "rev-parse", "HEAD"), 3, env=offline.env | OFFLINE)
    )
    assert third_ok, third.lines()
    assert "Running npm ci" in third.lines()
    assert served(tmp_path, 3) == "<p>is-number 7.0.0, build 3</p>\n"


def test_a_package_with_install_scripts_has_npm_install_check_the_restored_tree(
    tmp_path: Path,
) -> None:
    repo, _ = cache_site(tmp_path)
    package = json.loads((repo / "package.json").read_text())
    # npm runs the package's own install scripts on every install, even one with nothing to do.
    package["scripts"]["postinstall"] = "node -e \"require('fs').writeFileSync('ran', 'yes')\""
    (repo / "package.json").write_text(json.dumps(package))
    git(repo, "commit", "-q", "-am", "a postinstall script")
    sha = git(repo, "rev-parse", "HEAD")
    build(spec_of(tmp_path, repo, sha, 1))

    ok, second = build(spec_of(tmp_path, repo, sha, 2))

    assert ok, second.lines()
    (hit,) = [line for line in cache_lines(second) if line.startswith("Build cache: hit")]
    assert "matches: node_modules restored" in hit
    assert not hit.endswith("unread")  # the download caches came back: npm may need them
    assert "Build cache: node_modules matches the lockfile: npm install checks it" in second.lines()
    assert "Running npm install" in second.lines()
    assert NOTHING_TO_INSTALL not in second.lines()
    assert "> cache-site@1.0.0 postinstall" in "\n".join(second.lines())
    assert served(tmp_path, 2) == "<p>is-number 7.0.0, build 2</p>\n"


def _home(archive: dict[str, Any], prefix: str) -> list[str]:
    return sorted(name for name in archive["names"] if name.startswith(prefix))


def test_a_changed_lockfile_restores_the_download_cache_but_not_node_modules(
    tmp_path: Path,
) -> None:
    repo, sha = cache_site(tmp_path)
    build(spec_of(tmp_path, repo, sha, 1))
    before = members(stored(tmp_path, "main"))["meta"]["lockfile"]
    changed = lock_is_number_6(repo)

    ok, sink = build(spec_of(tmp_path, repo, changed, 2))

    assert ok, sink.lines()
    (hit,) = [line for line in cache_lines(sink) if line.startswith("Build cache: hit")]
    assert "differs: node_modules not restored" in hit
    assert "Running npm ci" in sink.lines()
    assert served(tmp_path, 2) == "<p>is-number 6.0.0, build 2</p>\n"
    after = members(stored(tmp_path, "main"))["meta"]["lockfile"]
    assert after != before


def test_a_fork_and_a_new_branch_start_from_production_and_only_the_branch_saves(
    tmp_path: Path,
) -> None:
    repo, sha = cache_site(tmp_path)
    build(spec_of(tmp_path, repo, sha, 1))
    production = stored(tmp_path, "main").read_bytes()

    fork_ok, fork = build(spec_of(tmp_path, repo, sha, 2, branch="", from_fork=True, env=OFFLINE))
    branch_ok, branch = build(spec_of(tmp_path, repo, sha, 3, branch="feature/x", env=OFFLINE))

    assert fork_ok, fork.lines()
    assert "(branch 'main''s, the production branch)" in cache_lines(fork)[0]
    assert cache_lines(fork)[-1] == (
        "Build cache: not saved (a fork's pull request never writes the project's cache)"
    )
    assert branch_ok, branch.lines()
    assert "(branch 'main''s, the production branch)" in cache_lines(branch)[0]
    assert stored(tmp_path, "main").read_bytes() == production
    assert sorted(path.name for path in stored(tmp_path, "main").parent.iterdir()) == sorted(
        [stored(tmp_path, "main").name, stored(tmp_path, "feature/x").name]
    )
    assert members(stored(tmp_path, "feature/x"))["meta"]["branch"] == "feature/x"


def test_a_pull_request_starts_from_its_base_branchs_cache_before_productions(
    tmp_path: Path,
) -> None:
    repo, sha = cache_site(tmp_path)
    build(spec_of(tmp_path, repo, sha, 1))
    build(spec_of(tmp_path, repo, sha, 2, branch="develop", env=OFFLINE))
    base = stored(tmp_path, "develop").read_bytes()
    key = stored(tmp_path, "develop").relative_to(tmp_path / "storage")

    fork_ok, fork = build(
        spec_of(
            tmp_path, repo, sha, 3, branch="", from_fork=True, base_branch="develop", env=OFFLINE
        )
    )
    branch_ok, branch = build(
        spec_of(tmp_path, repo, sha, 4, branch="feature/y", base_branch="develop", env=OFFLINE)
    )
    own_ok, own = build(
        spec_of(tmp_path, repo, sha, 5, branch="feature/y", base_branch="develop", env=OFFLINE)
    )

    whose = "(branch 'develop''s, the pull request's base branch)"
    assert fork_ok, fork.lines()
    assert cache_lines(fork)[0].startswith(f"Build cache: hit {key} {whose}, ")
    assert cache_lines(fork)[-1] == (
        "Build cache: not saved (a fork's pull request never writes the project's cache)"
    )
    assert branch_ok, branch.lines()
    assert cache_lines(branch)[0].startswith(f"Build cache: hit {key} {whose}, ")
    assert stored(tmp_path, "develop").read_bytes() == base
    assert members(stored(tmp_path, "feature/y"))["meta"]["branch"] == "feature/y"
    assert own_ok, own.lines()
    own_key = stored(tmp_path, "feature/y").relative_to(tmp_path / "storage")
    assert cache_lines(own)[0].startswith(
        f"Build cache: hit {own_key} (branch 'feature/y''s own), "
    )


def test_a_cache_over_the_cap_is_not_saved_and_the_build_still_deploys(tmp_path: Path) -> None:
    repo, sha = cache_site(tmp_path)
    spec = spec_of(
        tmp_path, repo, sha, 1, limits=BuildLimits(cache_mb=1), env={"CACHE_BLOB_MB": "2"}
    )

    ok, sink = build(spec)

    assert ok, sink.lines()
    assert cache_lines(sink)[-1] == (
        "Build cache: not saved: it is larger than 1 MB (SCALEMESH_BUILD_CACHE_MB)"
    )
    assert not (tmp_path / "storage" / "__cache").exists()
    assert served(tmp_path, 1) == "<p>is-number 7.0.0, build 1</p>\n"


def test_a_corrupt_cache_is_ignored_with_a_warning_and_replaced(tmp_path: Path) -> None:
    repo, sha = cache_site(tmp_path)
    archive = stored(tmp_path, "main")
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"\x28\xb5\x2f\xfd" + b"not really zstandard" * 50)

    ok, sink = build(spec_of(tmp_path, repo, sha, 1))

    assert ok, sink.lines()
    warning = cache_lines(sink)[0]
    assert warning.startswith(
        f"Warning: the build cache {archive.relative_to(tmp_path / 'storage')}"
    )
    assert warning.endswith("; building without it")
    assert cache_lines(sink)[1].startswith("Build cache: saved")
    assert members(archive)["meta"]["branch"] == "main"


def test_a_redeploy_without_cache_restores_nothing_and_saves_a_fresh_cache(
    tmp_path: Path,
) -> None:
    repo, sha = cache_site(tmp_path)
    build(spec_of(tmp_path, repo, sha, 1))

    ok, sink = build(spec_of(tmp_path, repo, sha, 2, clear_cache=True))

    assert ok, sink.lines()
    assert cache_lines(sink)[0] == (
        "Build cache: not restored (redeploy without cache); a fresh one is saved"
    )
    assert served(tmp_path, 2) == "<p>is-number 7.0.0, build 1</p>\n"  # .keep/ started empty
    assert cache_lines(sink)[1].startswith("Build cache: saved")


def test_the_cache_works_in_the_sandbox_as_the_builds_own_user(tmp_path: Path) -> None:
    repo, sha = cache_site(tmp_path)

    first_ok, first = sandboxed(spec_of(tmp_path, repo, sha, 1))
    second_ok, second = sandboxed(spec_of(tmp_path, repo, sha, 2))

    assert first_ok, first.lines()
    assert second_ok, second.lines()
    assert any(line.startswith("Commands run in: bubblewrap sandbox") for line in second.lines())
    assert cache_lines(first)[1].startswith("Build cache: saved")
    assert "matches: node_modules restored" in cache_lines(second)[0]
    assert NOTHING_TO_INSTALL in second.lines()
    assert served(tmp_path, 2) == "<p>is-number 7.0.0, build 2</p>\n"
