"""Benchmark the build cache: a real Vite + React site built cold, then warm, several rounds.

    .venv/bin/python bench/build_cache.py [--rounds 5]

Two sites, each with its npm lockfile, their dependencies from the npm registry (no offline
flag):
  template  bench/sites/vite-react: what `npm create vite@latest -- --template react` makes
            (Vite 8, @vitejs/plugin-react, oxlint), unchanged but for its name. The target is
            decided on it.
  minimal   tests/fixtures/sites/vite-react, the suite's site: react, react-dom and Vite 6, no
            plugin; shown beside it.
Each round starts from an empty storage directory and runs the real pipeline (clone, detect,
install, build, upload; commands unconfined, as `SCALEMESH_UNSAFE_LOCAL_BUILDS=1` runs them)
twice on one branch, for each site in turn:
  cold   no cache yet: npm ci downloads every package into a fresh HOME;
  warm   the cache the cold build saved: ~/.npm and node_modules restored; neither site has
         install scripts of its own, so nothing is installed (`builder.build_cache`).
Every build has a fresh HOME and checkout, so nothing but the build cache carries over. The
times are the manifest's `install` (restoring the cache included) and `build` steps. Prints a
row per site and round, and per site the median warm/cold ratio of the install alone and of
install + build. Target: at most 40% for the template (the exit status). Vite keeps no build
cache, so the build step costs the same warm and cold; the cache wins on the install.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.repos import commit_all  # noqa: E402 - after the path tweak
from builder import pipeline  # noqa: E402
from builder.confine import Unconfined, given  # noqa: E402
from builder.logsink import Masker, StdoutSink  # noqa: E402
from builder.spec import MANIFEST, BuildLimits, BuildSpec, output_prefix  # noqa: E402
from builder.upload import LocalStorage  # noqa: E402

TARGET = 0.40
SITES = {
    "template": ROOT / "bench" / "sites" / "vite-react",
    "minimal": ROOT / "tests" / "fixtures" / "sites" / "vite-react",
}
"""The first one decides the target."""


def make_repo(root: Path, site: Path) -> tuple[Path, str]:
    repo = root / "repo"
    shutil.copytree(site, repo, ignore=shutil.ignore_patterns("locks"))
    if (site / "locks").is_dir():
        shutil.copy(site / "locks" / "package-lock.json", repo)
    return repo, commit_all(repo)


def one_build(repo: Path, sha: str, storage: Path, name: str) -> tuple[float, float, str]:
    """(install s, build s, the cache's log line) of one build of `main`."""
    spec = BuildSpec(
        deployment_id=name,
        project_id=1,
        git_url=repo.as_uri(),
        sha=sha,
        storage_url=storage.as_uri(),
        branch="main",
        production_branch="main",
        target="production",
        timeout=600,
    )
    log = storage.parent / f"{name}.ndjson"
    with log.open("w") as out:
        ok = pipeline.run(
            spec,
            StdoutSink(Masker(()), out),
            LocalStorage(storage),
            path=os.environ["PATH"],
            # No address-space limit: Vite's Rollup reserves WebAssembly memory far beyond it.
            confine=given(Unconfined(BuildLimits(memory_mb=1 << 30))),
        )
    events = [json.loads(line) for line in log.read_text().splitlines()]
    texts = [event.get("text", "") for event in events if event["type"] == "line"]
    if not ok:
        sys.exit(f"{name} failed:\n" + "\n".join(texts[-30:]))
    manifest = json.loads((storage / output_prefix(1, name) / MANIFEST).read_text())
    cache = next((text for text in texts if text.startswith("Build cache: hit")), "")
    return manifest["steps"]["install"] / 1000, manifest["steps"]["build"] / 1000, cache


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ratios: dict[str, list[float]] = {name: [] for name in SITES}
    installs: dict[str, list[float]] = {name: [] for name in SITES}
    print(
        f"{'site':<8} {'round':>5}  {'cold install':>12} {'cold build':>10} {'cold total':>10}  "
        f"{'warm install':>12} {'warm build':>10} {'warm total':>10}  {'install':>7} "
        f"{'warm/cold':>9}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        repos = {name: make_repo(Path(tmp) / name, site) for name, site in SITES.items()}
        lines = {}
        for number in range(1, args.rounds + 1):
            for name, (repo, sha) in repos.items():
                storage = Path(tmp) / name / f"round-{number}" / "storage"
                storage.mkdir(parents=True)
                cold = one_build(repo, sha, storage, f"cold-{number}")
                warm = one_build(repo, sha, storage, f"warm-{number}")
                if not warm[2]:
                    sys.exit(f"{name}, round {number}: the warm build did not hit the cache")
                lines[name] = warm[2]
                ratio = (warm[0] + warm[1]) / (cold[0] + cold[1])
                ratios[name].append(ratio)
                installs[name].append(warm[0] / cold[0])
                print(
                    f"{name:<8} {number:>5}  {cold[0]:>11.2f}s {cold[1]:>9.2f}s "
                    f"{cold[0] + cold[1]:>9.2f}s  {warm[0]:>11.2f}s {warm[1]:>9.2f}s "
                    f"{warm[0] + warm[1]:>9.2f}s  {installs[name][-1]:>7.0%} {ratio:>9.0%}"
                )
    print()
    for name, line in lines.items():
        print(f"{name} warm cache line: {line}")
    print()
    for name in SITES:
        median = statistics.median(ratios[name])
        print(
            f"{name}: median warm/cold of the install step alone "
            f"{statistics.median(installs[name]):.0%}, of install + build {median:.1%}"
        )
    decided = statistics.median(ratios[next(iter(SITES))])
    verdict = "PASS" if decided <= TARGET else "FAIL"
    print(f"target (template, install + build) <= {TARGET:.0%}: {decided:.1%} {verdict}")
    return 0 if decided <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
