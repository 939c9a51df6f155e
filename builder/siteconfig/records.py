"""What a repository's config file says, as one frozen record whatever file it came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Previews:
    """Which branches get preview deployments (`previews` in scalemesh.json)."""

    enabled: bool = True
    include: tuple[str, ...] = ()
    """Branch globs (`fnmatch`); empty: every branch."""
    exclude: tuple[str, ...] = ()
    """Branch globs never previewed; they win over `include`."""
    ttl_days: int | None = None
    """A preview idle (no push) this many days is torn down (`previews.ttlDays`); None: never."""


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """A config file's settings, resolved for one build's target and branch.

    None (or empty) means the file does not set it: detection or the default decides.
    """

    source: str | None = None
    """The file read, relative to the checkout (`scalemesh.json`, `web/netlify.toml`); None:
    the repository has none."""
    build_command: str | None = None
    install_command: str | None = None
    output_directory: str | None = None
    root_directory: str | None = None
    framework: str | None = None
    node_version: str | None = None
    ignore_command: str | None = None
    watch_paths: tuple[str, ...] = ()
    """Paths (relative to the repository) whose changes build a project with a root directory."""
    cache: tuple[str, ...] = ()
    """Paths (relative to the root directory) kept in the build cache (`builder.build_cache`)."""
    clean_urls: bool | None = None
    trailing_slash: bool | None = None
    rules: Mapping[str, Any] | None = None
    """The manifest's `rules` object (see `builder.siterules`); None: the file has no rules."""
    rule_positions: Mapping[str, tuple[tuple[str, int | None], ...]] = field(default_factory=dict)
    """For each kind of `rules` (`redirects`, ...), each rule's path in the file and its line,
    in order: `("redirects[3]", 12)`. For messages about a rule."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Non-secret build variables for this build's target and branch."""
    env_scopes: Mapping[str, str] = field(default_factory=dict)
    """For each name in `env`, the environment of the file it came from (`production`, ...)."""
    previews: Previews = field(default_factory=Previews)
    warnings: tuple[str, ...] = ()
    """What the file asks for that Scale Mesh does not do, one line each, for the build log."""
    lines: Mapping[str, int] = field(default_factory=dict)
    """The line of each top-level field in the file, for messages."""
