"""node_modules comes back only to a build that would install the very same tree, through the
real pipeline and real npm installs: a devDependency that `NODE_ENV=production` or an
`.npmrc`'s `omit=dev` leaves out is not brought back by the cache, nor kept out after."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.build_cache import build, cache_lines, cache_site, served, spec_of
from tests.support.git import git

BUILD_JS = """\
const fs = require("fs");
let version = "absent";
try { version = require("is-number/package.json").version; } catch {}
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/index.html", `<p>is-number ${version}</p>\\n`);
"""
"""Names the is-number installed, or none."""
PRESENT, ABSENT = "<p>is-number 7.0.0</p>\n", "<p>is-number absent</p>\n"


def _dev_dependency_site(tmp_path: Path) -> tuple[Path, str]:
    """The cache site with is-number as a devDependency, and a build that tells if it is there."""
    repo, _ = cache_site(tmp_path)
    package = json.loads((repo / "package.json").read_text())
    package["devDependencies"] = package.pop("dependencies")
    lock = json.loads((repo / "package-lock.json").read_text())
    lock["packages"][""]["devDependencies"] = lock["packages"][""].pop("dependencies")
    lock["packages"]["node_modules/is-number"]["dev"] = True
    (repo / "package.json").write_text(json.dumps(package, indent=2))
    (repo / "package-lock.json").write_text(json.dumps(lock, indent=2))
    (repo / "build.js").write_text(BUILD_JS)
    git(repo, "commit", "-q", "-am", "is-number as a devDependency")
    return repo, git(repo, "rev-parse", "HEAD")


def _hit(lines: list[str]) -> str:
    (hit,) = [line for line in lines if line.startswith("Build cache: hit")]
    return hit


def test_node_env_production_installs_its_own_tree_and_a_build_without_it_gets_the_whole(
    tmp_path: Path,
) -> None:
    repo, sha = _dev_dependency_site(tmp_path)
    defaults = spec_of(tmp_path, repo, sha, 1).env

    first_ok, first = build(spec_of(tmp_path, repo, sha, 1))
    second_ok, second = build(
        spec_of(tmp_path, repo, sha, 2, env={**defaults, "NODE_ENV": "production"})
    )
    third_ok, third = build(spec_of(tmp_path, repo, sha, 3))

    assert first_ok, first.lines()
    assert second_ok, second.lines()
    assert third_ok, third.lines()
    assert served(tmp_path, 1) == PRESENT
    # The cached tree holds the devDependency; under NODE_ENV=production npm ci leaves it out.
    assert "differs: node_modules not restored" in _hit(cache_lines(second))
    assert "Running npm ci" in second.lines()
    assert served(tmp_path, 2) == ABSENT
    # The branch's cache is now that production tree: without NODE_ENV it does not come back.
    assert "differs: node_modules not restored" in _hit(cache_lines(third))
    assert served(tmp_path, 3) == PRESENT


def test_an_npmrc_that_omits_devdependencies_installs_its_own_tree(tmp_path: Path) -> None:
    repo, sha = _dev_dependency_site(tmp_path)
    first_ok, first = build(spec_of(tmp_path, repo, sha, 1))
    (repo / ".npmrc").write_text("omit=dev\n")
    git(repo, "add", ".npmrc")
    git(repo, "commit", "-q", "-m", "omit devDependencies")

    second_ok, second = build(spec_of(tmp_path, repo, git(repo, "rev-parse", "HEAD"), 2))

    assert first_ok, first.lines()
    assert second_ok, second.lines()
    assert served(tmp_path, 1) == PRESENT
    assert "differs: node_modules not restored" in _hit(cache_lines(second))
    assert "Running npm ci" in second.lines()
    assert served(tmp_path, 2) == ABSENT
