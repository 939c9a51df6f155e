"""The effective build config and where each value came from: the project's settings (API,
dashboard) over the config file, the file over detection, detection over the defaults.

What `detect()` is given, the build log's account of it, and the manifest's `config`.
Env var values never appear: only their names and scopes.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from builder.detect import Plan
from builder.siteconfig.records import Previews, SiteConfig
from builder.spec import BuildSpec

PROJECT = "project"
DETECTED = "detected"
DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class Setting:
    value: Any
    """A string, a boolean, a list of strings, an object (previews) or None (unset)."""
    source: str
    """`project`, the config file (`scalemesh.json`), `detected` or `default`."""


def given(spec: BuildSpec, config: SiteConfig) -> dict[str, str | None]:
    """What detection is told: each project setting, else the file's."""
    return {
        "root_directory": _first(spec.root_directory, config.root_directory),
        "install_command": _first(spec.install_command, config.install_command),
        "build_command": _first(spec.build_command, config.build_command),
        "output_directory": _first(spec.output_directory, config.output_directory),
    }


def _first(project: str | None, from_file: str | None) -> str | None:
    return project if project is not None else from_file


def settings(spec: BuildSpec, config: SiteConfig, plan: Plan) -> dict[str, Setting]:
    """Every field of the effective config, in scalemesh.json's names, with its source."""
    file = config.source or "file"

    def pick(project: Any, from_file: Any, detected: Any = None, default: Any = None) -> Setting:
        for value, source in ((project, PROJECT), (from_file, file), (detected, DETECTED)):
            if value is not None:
                return Setting(value, source)
        return Setting(default, DEFAULT)

    previews = config.previews
    return {
        "rootDirectory": pick(spec.root_directory, config.root_directory, default="."),
        "installCommand": pick(spec.install_command, config.install_command, _joined(plan.install)),
        "buildCommand": pick(spec.build_command, config.build_command, _joined(plan.build)),
        "outputDirectory": pick(
            spec.output_directory, config.output_directory, plan.output_directory
        ),
        # Detection took the file's framework (or refused it), by the name it knows it by.
        "framework": pick(None, plan.framework if config.framework else None, plan.framework),
        "nodeVersion": pick(None, config.node_version),
        "ignoreCommand": pick(None, config.ignore_command),
        "watchPaths": pick(None, list(config.watch_paths) or None, default=[]),
        "cache": pick(None, list(config.cache) or None, default=[]),
        "cleanUrls": pick(None, config.clean_urls, default=False),
        "trailingSlash": pick(None, config.trailing_slash),
        "previews": pick(
            None,
            None
            if previews == Previews()
            else {
                "enabled": previews.enabled,
                "include": list(previews.include),
                "exclude": list(previews.exclude),
                **({} if previews.ttl_days is None else {"ttlDays": previews.ttl_days}),
            },
            default={"enabled": True, "include": [], "exclude": []},
        ),
    }


def _joined(argv: Sequence[str] | None) -> str | None:
    return None if argv is None else shlex.join(argv)


def env_scopes(spec: BuildSpec, config: SiteConfig) -> dict[str, str]:
    """Each variable the build gets, by name → where it came from (values never)."""
    scopes = {
        name: f"{config.source}: {scope}"
        for name, scope in config.env_scopes.items()
        if name not in spec.env
    }
    # A project's variable wins over the file's of the same name.
    scopes |= {name: spec.env_scopes.get(name) or "all" for name in spec.env}
    return dict(sorted(scopes.items()))


def manifest_config(spec: BuildSpec, config: SiteConfig, plan: Plan) -> dict[str, Any]:
    """The manifest's `config` object."""
    return {
        "file": config.source,
        "fields": {
            name: {"value": setting.value, "source": setting.source}
            for name, setting in settings(spec, config, plan).items()
        },
        "env": env_scopes(spec, config),
        "warnings": list(config.warnings),
    }


def file_lines(config: SiteConfig) -> list[str]:
    """The log's first word on the config: which file, and each warning about it."""
    if config.source is None:
        return ["Config file: none (no scalemesh.json, vercel.json or netlify.toml)"]
    return [f"Config file: {config.source}", *(f"Warning: {text}" for text in config.warnings)]


def log_lines(spec: BuildSpec, config: SiteConfig, plan: Plan) -> list[str]:
    """The effective config, a line a field with its source; the rules; the env names."""
    lines = ["Effective config:"]
    for name, setting in settings(spec, config, plan).items():
        lines.append(f"  {name}: {_shown(setting.value)} ({setting.source})")
    if config.rules is not None:
        counts = [
            f"{len(config.rules.get(kind) or [])} {kind}"
            for kind in ("redirects", "rewrites", "headers")
        ]
        lines.append(f"Rules from {config.source}: {', '.join(counts)}")
    scopes = env_scopes(spec, config)
    listed = ", ".join(f"{name} ({scope})" for name, scope in scopes.items())
    lines.append(f"Env: {listed}" if scopes else "Env: no variables")
    return lines


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(value) if value else "none"
    if isinstance(value, Mapping):
        if not value["enabled"]:
            return "disabled"
        parts = [
            f"{kind}: {', '.join(value[kind])}" for kind in ("include", "exclude") if value[kind]
        ]
        return "; ".join(["enabled", *parts])
    return str(value)
