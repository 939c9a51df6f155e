"""The install step's first part: the Node.js (and bun) a build asks for, first on its PATH.

npm and corepack stay the builder's own: their `#!/usr/bin/env node` runs them with the Node
chosen here, and corepack fetches pnpm and yarn through the build's egress proxy into the
build's own home (`COREPACK_HOME` is under it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from builder.detect import Plan
from builder.toolchains import bun, node
from builder.toolchains.registry import REGISTRY, Registry, cache_root

SYSTEM_CAS = Path("/etc/ssl/certs/ca-certificates.crt")
"""Debian's CA bundle, which the sandbox shows (its /etc/ssl)."""
TOOLCHAIN_ENV = {
    # Corepack checks pnpm's and yarn's registry signatures against keys it ships with, which a
    # registry mirror (or a newer signing key) fails; the sha512 check of the tarball remains,
    # as for every dependency npm installs.
    "COREPACK_INTEGRITY_KEYS": "0",
    # Yarn 2+ from the npm registry (@yarnpkg/cli-dist), like pnpm and yarn 1, rather than from
    # repo.yarnpkg.com: one origin for every package manager, the one a build's network allows.
    "COREPACK_NPM_REGISTRY": REGISTRY,
    # Node's fetch (corepack's) trusts only Node's own CAs; git, curl and npm (its cafile) trust
    # the system's, which may hold a registry mirror's CA.
    **({"NODE_EXTRA_CA_CERTS": str(SYSTEM_CAS)} if SYSTEM_CAS.is_file() else {}),
}
"""Defaults of the build's environment; a project's own variables override them."""


def prepare_toolchains(
    repo: Path,
    plan: Plan,
    node_version: str | None,
    config_file: str | None,
    cache: Path | None,
    path: str,
    note: Callable[[str], None],
    *,
    registry: Registry | None = None,
    machine: str | None = None,
) -> str:
    """The PATH the build's commands get; `note` tells the build log what was chosen and why.

    `node_version`: the config file's `nodeVersion` (`config_file` names the file). Raises
    `BuildError` when the version asked for cannot be found or fetched.
    """
    registry = registry or Registry()
    repo = repo.resolve()
    request = node.requested(repo, plan.root, node_version, config_file)
    if request is None and plan.package_manager is None:
        return path  # nothing of Node's runs here (a static site, another generator)
    checked = cache_root(cache) if cache is not None else None
    source = request.source if request else "default"
    choice = node.choose(
        request, node.host_version(path), node.fetcher(registry, checked, source, machine)
    )
    note(choice.note)
    if choice.bin_dir is not None:
        path = f"{choice.bin_dir}:{path}"
    if plan.package_manager == "bun":
        wanted = bun.declared(plan.declared_manager)
        version, bin_dir = bun.install(registry, checked, wanted, bun.platform_package(machine))
        why = "packageManager in package.json" if wanted else "the newest"
        note(f"bun {version} ({why}), for {plan.lockfile or 'package.json'}")
        path = f"{bin_dir}:{path}"
    return path
