"""Benchmark the sandbox's cost: a trivial build with and without it, side by side.

    .venv/bin/python bench/sandbox.py [--rounds 7] [--builds 5]

Each build is the real `python -m builder` process, started as the local runner starts it (the
spec on stdin, JSON events on stdout), on a static site whose build command writes one file, to
a storage directory: clone, detect, install (none), build, stage, upload, manifest. The two
contenders run alternately in every round, so drift of the machine hits both alike:
  sandboxed    `SCALEMESH_BUILDER_SANDBOX` as the local runner sets it by default: bubblewrap,
               with the egress proxy and relay, a cgroup where the machine allows one;
  unconfined   `{"kind": "none"}`, what `SCALEMESH_UNSAFE_LOCAL_BUILDS=1` falls back to.
Prints, per round, the median build time of each and the difference, then the median over the
rounds. Target: the sandbox adds under 300 ms to a build.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.repos import commit_all  # noqa: E402 - after the path tweak
from builder.confinement_choice import SANDBOX  # noqa: E402
from builder.sandbox import find_bwrap  # noqa: E402
from builder.spec import BuildSpec  # noqa: E402

TARGET_MS = 300.0
BUILD = "sh -c 'mkdir -p dist && echo \"<h1>hi</h1>\" > dist/index.html'"


def make_repo(root: Path) -> tuple[Path, str]:
    repo = root / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("a trivial site\n")
    return repo, commit_all(repo)


def one_build(root: Path, repo: Path, sha: str, sandbox: str, n: int) -> float:
    """Seconds for one `python -m builder`, start to exit; fails loudly if it did not deploy."""
    work = root / f"work-{n}"
    work.mkdir(mode=0o711)
    spec = BuildSpec(
        deployment_id=f"bench-{n}",
        project_id=1,
        git_url=repo.as_uri(),
        sha=sha,
        storage_url=(root / "storage").as_uri(),
        build_command=BUILD,
        output_directory="dist",
    )
    env = {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        SANDBOX: sandbox,
        "SCALEMESH_BUILDER_WORK_ROOT": str(work),
    }
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-P", "-m", "builder"],
        input=json.dumps(spec.to_json()),
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the build failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--builds", type=int, default=5, help="builds of each kind per round")
    args = parser.parse_args(argv)
    contenders = {
        "sandboxed": json.dumps({"kind": "bubblewrap", "bwrap": str(find_bwrap())}),
        "unconfined": json.dumps({"kind": "none"}),
    }
    print(
        f"{'round':>5}  {'sandboxed ms':>13}  {'unconfined ms':>14}  {'added ms':>9}  {'ratio':>6}"
    )
    added: list[float] = []
    with tempfile.TemporaryDirectory(prefix="scalemesh-bench-sandbox-") as tmp:
        root = Path(tmp)
        root.chmod(0o711)  # the sandbox's own host uid passes through to the build's directory
        repo, sha = make_repo(root)
        count = 0
        for round_number in range(1, args.rounds + 1):
            times: dict[str, list[float]] = {name: [] for name in contenders}
            for _ in range(args.builds):
                for name, sandbox in contenders.items():
                    count += 1
                    times[name].append(one_build(root, repo, sha, sandbox, count) * 1000)
            with_ms = statistics.median(times["sandboxed"])
            without_ms = statistics.median(times["unconfined"])
            added.append(with_ms - without_ms)
            print(
                f"{round_number:>5}  {with_ms:>13.0f}  {without_ms:>14.0f}  "
                f"{with_ms - without_ms:>9.0f}  {with_ms / without_ms:>6.2f}"
            )
    overall = statistics.median(added)
    verdict = "PASS" if overall < TARGET_MS else "FAIL"
    print(f"median added per build: {overall:.0f} ms (target < {TARGET_MS:.0f} ms): {verdict}")
    return 0 if overall < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
