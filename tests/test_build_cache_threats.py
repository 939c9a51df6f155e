"""The build cache against a hostile build, in the bubblewrap sandbox: while a warm build runs,
the archive it restored stays in the builder's scratch directory (hard-linked to the stored
object when storage is local), and the download caches it carries wait there for the save. A
build that goes looking for any `.tar.zst` to overwrite, in storage, in the host's temporary
directories and in its own, finds nothing, and the project's stored cache is the one the builder
wrote."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from tests.support.build_cache import cache_lines, cache_site, members, spec_of, stored
from tests.support.git import git
from tests.support.toolchains import sandboxed

HUNT = """
const fs = require("fs"), path = require("path");
const found = [], written = [];
function walk(dir, depth) {
  if (depth > 8) return;
  let entries;
  try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return; }
  for (const entry of entries) {
    const where = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(where, depth + 1);
    else if (entry.name.endsWith(".tar.zst")) found.push(where);
  }
}
for (const root of (process.env.HUNT_ROOTS || "").split(":").concat(["/tmp", "/build"])) {
  walk(root, 0);
}
for (const file of found) {
  try { fs.writeFileSync(file, "poisoned"); written.push(file); } catch {}
}
console.log(`hunt: found ${found.length}, overwrote ${written.length}`);
"""


def test_a_build_reaches_neither_the_restored_archive_nor_the_stored_cache(
    tmp_path: Path,
) -> None:
    repo, _ = cache_site(tmp_path)
    (repo / "hunt.js").write_text(HUNT)
    package = json.loads((repo / "package.json").read_text())
    package["scripts"]["build"] = "node hunt.js && node build.js"
    (repo / "package.json").write_text(json.dumps(package))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a build that hunts for caches")
    sha = git(repo, "rev-parse", "HEAD")
    # Storage, this test's directory and the host's temporary one (the builder's scratch).
    roots = f"{tmp_path}:{tmp_path / 'storage'}:{tempfile.gettempdir()}"
    env = {"npm_config_audit": "false", "npm_config_fund": "false", "HUNT_ROOTS": roots}

    first_ok, first = sandboxed(spec_of(tmp_path, repo, sha, 1, env=env))
    before = members(stored(tmp_path, "main"))
    second_ok, second = sandboxed(spec_of(tmp_path, repo, sha, 2, env=env))

    assert first_ok, first.lines()
    assert second_ok, second.lines()
    (hit,) = [line for line in cache_lines(second) if line.startswith("Build cache: hit")]
    assert hit.endswith("the download caches are kept for the next save, unread")
    assert "hunt: found 0, overwrote 0" in second.lines()
    after = members(stored(tmp_path, "main"))  # still an archive of ours, readable
    assert after["meta"]["lockfile"] == before["meta"]["lockfile"]
    assert set(before["names"]) <= set(after["names"])
