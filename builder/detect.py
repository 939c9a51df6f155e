"""Work out how to build a checked-out repository: where, with which commands, into which dir."""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from builder.errors import BuildError

SUPPORTED = ("npm", "pnpm", "yarn")
LOCKFILES: dict[str, str] = {
    # In this order when one directory holds several and package.json's packageManager does
    # not choose among them.
    "package-lock.json": "npm",
    "npm-shrinkwrap.json": "npm",
    "pnpm-lock.yaml": "pnpm",
    "yarn.lock": "yarn",
    "bun.lockb": "bun",
    "bun.lock": "bun",
}
FRAMEWORKS: tuple[tuple[str, str, str], ...] = (
    # (dependency, framework, output directory). The first match wins, so frameworks built
    # on Vite (Astro, SvelteKit) come before plain Vite.
    ("next", "next", "out"),
    ("astro", "astro", "dist"),
    ("@sveltejs/kit", "sveltekit", "build"),
    ("@docusaurus/core", "docusaurus", "build"),
    ("react-scripts", "create-react-app", "build"),
    ("@11ty/eleventy", "eleventy", "_site"),
    ("vite", "vite", "dist"),
)
STATIC = "static"
CUSTOM = "custom"
CUSTOM_OUTPUT = "dist"
_PACKAGE_MANAGER = re.compile(r"^(?P<name>[a-z0-9][\w.-]*)@(?P<major>\d+)?")
_SHELL_SYNTAX = frozenset({"&&", "||", ";", "|", ">", ">>", "<", "&"})


@dataclass(frozen=True, slots=True)
class Plan:
    root: Path
    """The app's directory: the checkout, or `root_directory` inside it."""
    install_dir: Path
    """Where the install runs: the directory of the lockfile (a workspace root) or `root`."""
    package_manager: str | None
    """`npm`, `pnpm` or `yarn`; None when there is no package.json."""
    lockfile: str | None
    install: tuple[str, ...] | None
    build: tuple[str, ...] | None
    """Run in `root`; None when there is nothing to build."""
    output_directory: str
    """Relative to `root`, POSIX style; `.` is `root` itself."""
    framework: str


def detect(
    repo: Path,
    *,
    root_directory: str | None = None,
    install_command: str | None = None,
    build_command: str | None = None,
    output_directory: str | None = None,
) -> Plan:
    """The plan for the checkout at `repo`, with the project's overrides applied.

    Raises `BuildError` for what the user must fix: a root or output directory outside the
    repository, a package manager we do not run, an unreadable package.json.
    """
    repo = repo.resolve()
    root, _ = _inside(repo, repo, root_directory or ".", "root_directory")
    if not root.is_dir():
        raise BuildError(f"root directory {root_directory} was not found in the repository")
    package = _read_package_json(root)
    install = _custom("install_command", install_command)
    build = _custom("build_command", build_command)

    if package is None:
        framework = CUSTOM if build else STATIC if (root / "index.html").is_file() else None
        if framework is None:
            raise BuildError(
                f"found neither package.json nor index.html in {_label(repo, root)}; "
                "set root_directory, or build_command and output_directory"
            )
        output = CUSTOM_OUTPUT if framework == CUSTOM else "."
        manager = lockfile = None
        install_dir = root
    else:
        install_dir, lockfile, manager = _package_manager(repo, root, package)
        if install is None:
            install = _install_argv(install_dir, lockfile, manager, package)
        else:
            install_dir = root  # custom commands run in the root directory, like the build
        scripts = package.get("scripts")
        if build is None and isinstance(scripts, dict) and "build" in scripts:
            build = (*_runner(manager), "run", "build")
        framework, output = _framework(package)
        if framework == CUSTOM and build is None and (root / "index.html").is_file():
            framework, output = STATIC, "."
    if output_directory:
        _, output = _inside(repo, root, output_directory, "output_directory")
    return Plan(
        root=root,
        install_dir=install_dir,
        package_manager=manager if manager in SUPPORTED else None,
        lockfile=lockfile,
        install=install,
        build=build,
        output_directory=output,
        framework=framework,
    )


def _inside(repo: Path, base: Path, relative: str, setting: str) -> tuple[Path, str]:
    """`base / relative` resolved, and relative to `base`; it must stay inside `repo`."""
    pure = PurePosixPath(relative.strip())
    path = (base / pure).resolve()
    if pure.is_absolute() or not path.is_relative_to(repo):
        raise BuildError(f"{setting} must be a path inside the repository, not {relative!r}")
    # Relative to `base` may climb out of it: Nx writes `dist/apps/web` at the workspace root.
    return path, PurePosixPath(os.path.relpath(path, base)).as_posix()


def _label(repo: Path, directory: Path) -> str:
    relative = directory.relative_to(repo).as_posix()
    return "the repository root" if relative == "." else f"{relative}/"


def _custom(setting: str, command: str | None) -> tuple[str, ...] | None:
    if not command:
        return None
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise BuildError(f"{setting} cannot be read: {exc}") from None
    if not argv:
        raise BuildError(f"{setting} is empty")
    if syntax := next((word for word in argv if word in _SHELL_SYNTAX), None):
        raise BuildError(
            f"{setting} uses shell syntax ({syntax}), but commands run without a shell; "
            "put it in a package.json script, or write sh -c '...'"
        )
    return argv


def _read_package_json(directory: Path) -> dict[str, Any] | None:
    path = directory / "package.json"
    if not path.is_file():
        return None
    try:
        package = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BuildError(f"package.json is not valid JSON: {exc}") from None
    if not isinstance(package, dict):
        raise BuildError("package.json must hold a JSON object")
    return package


def _declared(package: dict[str, Any]) -> tuple[str, int | None] | None:
    """package.json's `packageManager` ("pnpm@9.1.0") as (name, major version)."""
    value = package.get("packageManager")
    match = _PACKAGE_MANAGER.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    major = match.group("major")
    return match.group("name"), int(major) if major else None


def _package_manager(
    repo: Path, root: Path, package: dict[str, Any]
) -> tuple[Path, str | None, str]:
    """(install dir, lockfile, manager) from the nearest lockfile at or above `root`."""
    declared = _declared(package)
    # Up to the repository root: a workspace keeps one lockfile at its top.
    for directory in [root, *(parent for parent in root.parents if parent.is_relative_to(repo))]:
        present = [name for name in LOCKFILES if (directory / name).is_file()]
        if present:
            workspace = _read_package_json(directory) if directory != root else package
            chosen = _declared(workspace or {}) or declared
            preferred = [name for name in present if chosen and LOCKFILES[name] == chosen[0]]
            lockfile = (preferred or present)[0]
            return directory, lockfile, LOCKFILES[lockfile]
    return root, None, declared[0] if declared else "npm"


def _install_argv(
    directory: Path, lockfile: str | None, manager: str, package: dict[str, Any]
) -> tuple[str, ...]:
    if manager not in SUPPORTED:
        found = f"found {lockfile}" if lockfile else "packageManager in package.json"
        raise BuildError(f"{manager} is not supported yet ({found}); use npm, pnpm or yarn")
    if manager == "npm":
        return ("npm", "ci") if lockfile else ("npm", "install")
    if lockfile is None:
        return ("corepack", manager, "install")
    if manager == "pnpm":
        return ("corepack", "pnpm", "install", "--frozen-lockfile")
    declared = _declared(_read_package_json(directory) or package)
    berry = (directory / ".yarnrc.yml").is_file() or (
        declared is not None and declared[0] == "yarn" and (declared[1] or 1) >= 2
    )
    return ("corepack", "yarn", "install", "--immutable" if berry else "--frozen-lockfile")


def _runner(manager: str) -> tuple[str, ...]:
    return ("corepack", manager) if manager in ("pnpm", "yarn") else ("npm",)


def _framework(package: dict[str, Any]) -> tuple[str, str]:
    dependencies: dict[str, Any] = {}
    for field in ("dependencies", "devDependencies"):
        if isinstance(section := package.get(field), dict):
            dependencies.update(section)
    for dependency, framework, output in FRAMEWORKS:
        if dependency in dependencies:
            return framework, output
    return CUSTOM, CUSTOM_OUTPUT
