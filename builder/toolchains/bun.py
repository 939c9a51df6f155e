"""bun for a repository with a bun lockfile: the version its package.json's `packageManager`
names (`bun@1.1.38`), else the newest, from the npm registry's platform package of the `bun`
package (`@oven/bun-linux-x64`, as `bun`'s own install picks it), into the toolchain cache."""

from __future__ import annotations

import platform
import re
from pathlib import Path

from builder.errors import BuildError
from builder.toolchains import semver
from builder.toolchains.registry import Registry, installed

_DECLARED = re.compile(r"bun@(?P<version>\d+\.\d+\.\d+)")
_PACKAGES = {"x86_64": "linux-x64", "amd64": "linux-x64", "aarch64": "linux-aarch64"}
_PACKAGES["arm64"] = "linux-aarch64"


def platform_package(machine: str | None = None, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """`@oven/bun-linux-x64`, or its `-baseline` build on an x64 CPU without AVX2."""
    machine = (machine or platform.machine()).lower()
    suffix = _PACKAGES.get(machine)
    if suffix is None:
        raise BuildError(f"no bun downloads for this machine's architecture ({machine})")
    if suffix == "linux-x64" and b" avx2" not in _read(cpuinfo):
        suffix += "-baseline"
    return f"@oven/bun-{suffix}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def declared(package_manager: object) -> str | None:
    """The exact version in `packageManager` (`bun@1.1.38+sha...`), or None."""
    if not isinstance(package_manager, str):
        return None
    match = _DECLARED.match(package_manager)
    return match.group("version") if match else None


def install(
    registry: Registry, cache: Path | None, version: str | None, package: str
) -> tuple[str, Path]:
    """(version, bin directory) of bun `version` (None: the newest) in `cache`."""
    if cache is None:
        raise BuildError(
            "this builder has no toolchain cache to install bun into (SCALEMESH_BUILDER_TOOLCHAINS)"
        )
    place = f"bun/{version}-{package.removeprefix('@oven/bun-')}"
    if version is not None and (found := installed(cache, place)) is not None:
        return version, found / "bin"
    document = registry.document(package)
    if version is None:
        tags = document.get("dist-tags")
        latest = tags.get("latest") if isinstance(tags, dict) else None
        if not isinstance(latest, str) or semver.release(latest) is None:
            raise BuildError(f"the npm registry names no latest version of {package}")
        version = latest
        place = f"bun/{version}-{package.removeprefix('@oven/bun-')}"
    elif version not in document["versions"]:
        raise BuildError(f"bun {version} (packageManager in package.json) is not on the registry")
    unpacked = registry.install(cache, place, registry.dist(document, version), "bin/bun")
    return version, unpacked / "bin"
