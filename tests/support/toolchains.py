"""Real builds with toolchains: one toolchain cache shared by every test (and kept between
runs), the Vite + React fixture with the lockfile of each package manager, and the sandbox.

These builds reach the npm registry: the builder fetches Node and bun, the sandboxed install
fetches packages (and corepack pnpm) through the egress proxy.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from builder.confinement_choice import confinement_for
from builder.sandbox import find_bwrap
from builder.spec import BuildSpec
from builder.toolchains.registry import REGISTRY, cache_root
from tests.support.builder import SITES, CapturingSink, make_repo, make_spec, run

VITE_REACT = SITES / "vite-react"
LOCKS = {
    "npm": "package-lock.json",
    "pnpm": "pnpm-lock.yaml",
    "yarn": "yarn.lock",
    "bun": "bun.lock",
}
DECLARED = {"npm": None, "pnpm": "pnpm@10.34.8", "yarn": "yarn@4.9.2", "bun": "bun@1.4.5"}
YARNRC = "nodeLinker: node-modules\nenableTelemetry: false\n"


def shared_cache() -> Path:
    """The tests' toolchain cache: `SCALEMESH_TEST_TOOLCHAINS`, else one per user in the
    system's temporary directory, so Node 22 and bun are downloaded once per machine."""
    raw = os.environ.get("SCALEMESH_TEST_TOOLCHAINS")
    default = Path(tempfile.gettempdir()) / f"scalemesh-test-toolchains-{os.geteuid()}"
    return cache_root(Path(raw) if raw else default)


def vite_react(tmp_path: Path, manager: str) -> BuildSpec:
    """The Vite + React site with `manager`'s lockfile (and packageManager), committed."""
    repo = tmp_path / "repo"
    shutil.copytree(VITE_REACT, repo, ignore=shutil.ignore_patterns("locks"))
    shutil.copy(VITE_REACT / "locks" / LOCKS[manager], repo)
    package: dict[str, Any] = json.loads((repo / "package.json").read_text())
    package["packageManager"] = DECLARED[manager]
    (repo / "package.json").write_text(json.dumps(package, indent=2))
    repo, sha = make_repo(repo, files={".yarnrc.yml": YARNRC} if manager == "yarn" else {})
    return make_spec(repo, sha, tmp_path / "storage", timeout=240)


def registry_networks() -> list[str]:
    """The npm registry's addresses when they are not public ones (some CI machines reach the
    registry through a mirror at a reserved address), for the egress proxy to allow."""
    found = socket.getaddrinfo(urlsplit(REGISTRY).hostname, 443, proto=socket.IPPROTO_TCP)
    addresses = {ipaddress.ip_address(entry[4][0]) for entry in found}
    return sorted(str(address) for address in addresses if not address.is_global)


def sandboxed(spec: BuildSpec, cache: Path | None = None) -> tuple[bool, CapturingSink]:
    """The pipeline with its commands in the bubblewrap sandbox, network through the egress
    proxy, and the toolchain cache shown read-only."""
    cache = cache or shared_cache()
    config = json.dumps(
        {"kind": "bubblewrap", "bwrap": str(find_bwrap()), "allow_networks": registry_networks()}
    )
    confine = confinement_for(None, config, spec.limits, toolchains=cache)
    return run(spec, confine=confine, toolchains=cache)
