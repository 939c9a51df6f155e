"""Which config file a build reads, and reading it: `scalemesh.json`, else `vercel.json`, else
`netlify.toml`, in the project's root directory first, then at the repository root.

With a root directory set in the project's settings, a file in that directory wins over one at
the repository root (each app of a monorepo keeps its own); without one, only the repository
root's file is read, and its `rootDirectory` (Netlify: `base`) chooses the app's directory.
Only one file is read: the others found beside it are named in a warning.
"""

from __future__ import annotations

import dataclasses
import posixpath
from pathlib import Path

from builder.siteconfig import files, netlify, scalemesh, vercel
from builder.siteconfig.records import SiteConfig
from builder.siteconfig.rules import check_compiled
from builder.spec import BuildSpec

NAMES = (scalemesh.NAME, vercel.NAME, netlify.NAME)
"""In the order they are looked for in a directory; the first found is read."""


def read_config(repo: Path, spec: BuildSpec) -> SiteConfig:
    """The config for `spec`'s build of the checkout at `repo`; an empty one without a file.

    Raises `ConfigError` (a `BuildError`) naming the file, line and field of what is wrong.
    """
    repo = repo.resolve()
    directories = [""]
    inner = _directory(spec.root_directory)
    if inner:
        directories.insert(0, inner)
    for directory in directories:
        found = [name for name in NAMES if files.exists(repo, posixpath.join(directory, name))]
        if found:
            return _read(repo, directory, found, spec)
    return SiteConfig()


def _directory(root_directory: str | None) -> str | None:
    """The root directory as a clean relative path; None for the repository root or a path
    that leaves it (detection refuses that one, naming the setting)."""
    if not root_directory:
        return None
    path = posixpath.normpath(root_directory.strip())
    if path.startswith(("/", "../")) or path in (".", ".."):
        return None
    return path


def _read(repo: Path, directory: str, found: list[str], spec: BuildSpec) -> SiteConfig:
    name = found[0]
    source = posixpath.join(directory, name)
    text = files.read_text(repo, source)
    if text is None:  # pragma: no cover - the file went away since it was found
        return SiteConfig()
    if name == scalemesh.NAME:
        config = scalemesh.read(text, source, target=spec.target, branch=spec.branch)
    elif name == vercel.NAME:

        def present(other: str) -> bool:
            return files.exists(repo, posixpath.join(directory, other))

        config = vercel.read(text, source, present=present)
    else:
        config = netlify.read(text, source, target=spec.target, branch=spec.branch)
    check_compiled(config)
    ignored = [
        f"{posixpath.join(directory, other)} is not read: {source} is" for other in found[1:]
    ]
    return dataclasses.replace(config, warnings=(*ignored, *config.warnings))
