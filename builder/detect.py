"""Work out how to build a checked-out repository: where, with which commands, into which dir."""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from builder import generators, repo_files
from builder.errors import BuildError

SUPPORTED = ("npm", "pnpm", "yarn", "bun")
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
NODE_FRAMEWORKS = tuple(framework for _, framework, _ in FRAMEWORKS)
STATIC = "static"
CUSTOM = "custom"
CUSTOM_OUTPUT = "dist"
_PACKAGE_MANAGER = re.compile(r"^(?P<name>[a-z0-9][\w.-]*)@(?P<major>\d+)?")
_SHELL_SYNTAX = frozenset({"&&", "||", ";", "|", ">", ">>", "<", "&"})
MAX_READ = 4 << 20
"""A package.json larger than this is refused: it is read into memory whole."""
INSTALL_SCRIPTS = frozenset(
    {"preinstall", "install", "postinstall", "prepublish", "preprepare", "prepare", "postprepare"}
)
"""The root package's lifecycle scripts npm runs on every install, even one that changes nothing."""


@dataclass(frozen=True, slots=True)
class Plan:
    root: Path
    """The app's directory: the checkout, or `root_directory` inside it."""
    install_dir: Path
    """Where the install runs: the directory of the lockfile (a workspace root) or `root`."""
    package_manager: str | None
    """`npm`, `pnpm`, `yarn` or `bun`; None when there is no package.json."""
    lockfile: str | None
    install: tuple[str, ...] | None
    build: tuple[str, ...] | None
    """Run in `root`; None when there is nothing to build."""
    output_directory: str
    """Relative to `root`, POSIX style; `.` is `root` itself."""
    framework: str
    output_path: str
    """The output directory relative to the checkout, POSIX style (what `staging.stage` takes)."""
    reason: str
    """Why this framework, for the build log ("vite in devDependencies, package-lock.json")."""
    declared_manager: str | None
    """package.json's `packageManager` as written (`bun@1.1.38`): the one beside the lockfile
    (a workspace root's), else the app's; None when neither names one."""
    install_is_quiet: bool = False
    """The detected install is `npm ci` of a package with no workspaces and none of
    `INSTALL_SCRIPTS`: over a node_modules npm made for this very lockfile it would do nothing."""


def detect(
    repo: Path,
    *,
    root_directory: str | None = None,
    install_command: str | None = None,
    build_command: str | None = None,
    output_directory: str | None = None,
    framework: str | None = None,
) -> Plan:
    """The plan for the checkout at `repo`, with the project's overrides applied.

    `framework` overrides detection. Accepted names: the Node frameworks of `FRAMEWORKS`
    (next, astro, sveltekit, docusaurus, create-react-app, eleventy, vite), hugo, mkdocs,
    static (no build step), and Vercel's preset names nextjs, sveltekit-1, docusaurus-2 and
    other (= static); case does not matter. Raises `BuildError` for what the user must fix: an
    unknown framework, a root or output directory outside the repository, a package manager we
    do not run, an unreadable package.json.
    """
    repo = repo.resolve()
    root, _ = _inside(repo, repo, root_directory or ".", "root_directory")
    if not root.is_dir():
        raise BuildError(f"root directory {root_directory} was not found in the repository")
    package = _read_package_json(repo, root)
    install = _custom("install_command", install_command)
    build = _custom("build_command", build_command)
    chosen = generators.framework_name(framework, NODE_FRAMEWORKS) if framework else None

    if package is None:
        if chosen in NODE_FRAMEWORKS:
            raise BuildError(
                f"framework {framework} needs a package.json in {repo_files.label(repo, root)}"
            )
        found = generators.find(repo, root, chosen=chosen, static=build is None)
        site = found or _without_site(repo, root, build, output_directory)
        framework, output = site.framework, site.output
        reason = f"{site.reason}, no package.json" if found else site.reason
        install, build = install or site.install, build or site.build
        manager = lockfile = declared = None
        install_dir = root
        quiet = False
    else:
        install_dir, lockfile, manager, workspace = _package_manager(repo, root, package)
        found_field = (workspace or {}).get("packageManager") or package.get("packageManager")
        declared = found_field if isinstance(found_field, str) else None
        quiet = False
        if install is None:
            install = _install_argv(repo, install_dir, lockfile, manager, workspace or package)
            quiet = install == ("npm", "ci") and install_dir == root and _quiet(package)
        else:
            install_dir = root  # custom commands run in the root directory, like the build
        scripts = package.get("scripts")
        if build is None and isinstance(scripts, dict) and "build" in scripts:
            build = (*_runner(manager), "run", "build")
        framework, output, reason = _framework(package, chosen, lockfile)
        if chosen in generators.GENERATORS or (framework == CUSTOM and build is None):
            beside = generators.find(repo, root, chosen=chosen, static=True)
            if beside is not None:
                framework, output = beside.framework, beside.output
                reason = beside.reason if chosen else f"{beside.reason}, package.json has no build"
                build = _custom("build_command", build_command) or beside.build
                if beside.install and not install_command:
                    install, install_dir, quiet = beside.install, root, False
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
        reason=reason,
        declared_manager=declared,
        install_is_quiet=quiet,
        output_path=PurePosixPath(
            os.path.relpath(os.path.normpath(root / output), repo)
        ).as_posix(),
    )


def _inside(repo: Path, base: Path, relative: str, setting: str) -> tuple[Path, str]:
    """`base / relative` resolved, and relative to `base`; it must stay inside `repo`."""
    pure = PurePosixPath(relative.strip())
    path = (base / pure).resolve()
    if pure.is_absolute() or not path.is_relative_to(repo):
        raise BuildError(f"{setting} must be a path inside the repository, not {relative!r}")
    # Relative to `base` may climb out of it: Nx writes `dist/apps/web` at the workspace root.
    return path, PurePosixPath(os.path.relpath(path, base)).as_posix()


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


def _read_package_json(repo: Path, directory: Path) -> dict[str, Any] | None:
    """The package.json in `directory`, or None; errors never quote it (it may be any file)."""
    data = repo_files.read_bytes(repo, directory / "package.json", MAX_READ)
    if data is None:
        return None
    name = (directory / "package.json").relative_to(repo).as_posix()
    try:
        package = json.loads(data)
    except json.JSONDecodeError as exc:
        raise BuildError(
            f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    except UnicodeDecodeError as exc:
        raise BuildError(f"{name} is not UTF-8 text (byte {exc.start})") from None
    if not isinstance(package, dict):
        raise BuildError(f"{name} must hold a JSON object")
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
) -> tuple[Path, str | None, str, dict[str, Any] | None]:
    """(install dir, lockfile, manager, the install dir's package.json) from the nearest
    lockfile at or above `root`."""
    declared = _declared(package)
    # Up to the repository root: a workspace keeps one lockfile at its top.
    for directory in [root, *(parent for parent in root.parents if parent.is_relative_to(repo))]:
        present = [name for name in LOCKFILES if repo_files.regular_file(repo, directory / name)]
        if present:
            workspace = _read_package_json(repo, directory) if directory != root else package
            chosen = _declared(workspace or {}) or declared
            preferred = [name for name in present if chosen and LOCKFILES[name] == chosen[0]]
            lockfile = (preferred or present)[0]
            return directory, lockfile, LOCKFILES[lockfile], workspace
    return root, None, declared[0] if declared else "npm", None


def _install_argv(
    repo: Path, directory: Path, lockfile: str | None, manager: str, package: dict[str, Any]
) -> tuple[str, ...]:
    """`package`: the package.json beside the lockfile (the app's when that has none)."""
    if manager not in SUPPORTED:
        found = f"found {lockfile}" if lockfile else "packageManager in package.json"
        raise BuildError(f"{manager} is not supported ({found}); use npm, pnpm, yarn or bun")
    if manager == "npm":
        return ("npm", "ci") if lockfile else ("npm", "install")
    if manager == "bun":
        # bun.lock or bun.lockb: either is frozen; without one, bun writes bun.lock.
        return ("bun", "install", "--frozen-lockfile") if lockfile else ("bun", "install")
    if lockfile is None:
        return ("corepack", manager, "install")
    if manager == "pnpm":
        return ("corepack", "pnpm", "install", "--frozen-lockfile")
    declared = _declared(package)
    berry = repo_files.regular_file(repo, directory / ".yarnrc.yml") is not None or (
        declared is not None and declared[0] == "yarn" and (declared[1] or 1) >= 2
    )
    return ("corepack", "yarn", "install", "--immutable" if berry else "--frozen-lockfile")


def _quiet(package: dict[str, Any]) -> bool:
    scripts = package.get("scripts")
    names = scripts.keys() if isinstance(scripts, dict) else ()
    return "workspaces" not in package and INSTALL_SCRIPTS.isdisjoint(names)


def _runner(manager: str) -> tuple[str, ...]:
    if manager == "bun":
        return ("bun",)
    return ("corepack", manager) if manager in ("pnpm", "yarn") else ("npm",)


def _without_site(
    repo: Path, root: Path, build: tuple[str, ...] | None, output_directory: str | None
) -> generators.Site:
    """No package.json and nothing `generators` knows: a build command, or a folder as it is."""
    if build:
        return generators.Site(CUSTOM, None, None, CUSTOM_OUTPUT, "build_command, no package.json")
    if output_directory:
        why = f"no package.json and no build command: {output_directory} is deployed as it is"
        return generators.Site(STATIC, None, None, ".", why)
    raise BuildError(
        f"found neither package.json nor index.html in {repo_files.label(repo, root)}; "
        "set root_directory, or build_command and output_directory"
    )


def _framework(
    package: dict[str, Any], chosen: str | None, lockfile: str | None
) -> tuple[str, str, str]:
    """(framework, output directory, why) from package.json's dependencies or `chosen`."""
    found = f", {lockfile}" if lockfile else ", no lockfile"
    dependencies: dict[str, str] = {}
    for field in ("devDependencies", "dependencies"):
        if isinstance(section := package.get(field), dict):
            dependencies |= dict.fromkeys(section, field)
    for dependency, framework, output in FRAMEWORKS:
        if chosen == framework:
            return framework, output, f"framework is {chosen}{found}"
        if chosen is None and dependency in dependencies:
            return framework, output, f"{dependency} in {dependencies[dependency]}{found}"
    return CUSTOM, CUSTOM_OUTPUT, f"package.json, no known framework in it{found}"
