"""Precedence: project settings over the file, the file over detection, detection over the
defaults; the log's and the manifest's account of it, env names and scopes but never values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from builder.detect import Plan
from builder.siteconfig import effective
from builder.siteconfig.records import Previews, SiteConfig
from tests.support.siteconfig import spec


def plan(**overrides: Any) -> Plan:
    values: dict[str, Any] = {
        "root": Path("/repo"),
        "install_dir": Path("/repo"),
        "package_manager": "npm",
        "lockfile": "package-lock.json",
        "install": ("npm", "ci"),
        "build": ("npm", "run", "build"),
        "output_directory": "dist",
        "framework": "vite",
        "output_path": "dist",
        "reason": "vite in package.json",
        "declared_manager": None,
    }
    return Plan(**(values | overrides))


FILE = SiteConfig(
    source="scalemesh.json",
    build_command="npm run build:file",
    install_command="npm install",
    output_directory="public",
    root_directory="web",
    framework="vite",
    node_version="22",
    ignore_command="exit 1",
    watch_paths=("shared",),
    cache=(".cache/images",),
    clean_urls=True,
    trailing_slash=False,
    previews=Previews(enabled=True, include=("feat/*",)),
    env={"API_URL": "file", "SHARED": "file"},
    env_scopes={"API_URL": "production", "SHARED": "production"},
    warnings=("scalemesh.json: something",),
)


def sources(settings: dict[str, effective.Setting]) -> dict[str, tuple[Any, str]]:
    return {name: (setting.value, setting.source) for name, setting in settings.items()}


def test_project_settings_win_over_the_file() -> None:
    project = spec(
        root_directory="site",
        install_command="pnpm i",
        build_command="make",
        output_directory="out",
    )

    settings = sources(effective.settings(project, FILE, plan()))

    assert settings["rootDirectory"] == ("site", "project")
    assert settings["installCommand"] == ("pnpm i", "project")
    assert settings["buildCommand"] == ("make", "project")
    assert settings["outputDirectory"] == ("out", "project")
    assert effective.given(project, FILE) == {
        "root_directory": "site",
        "install_command": "pnpm i",
        "build_command": "make",
        "output_directory": "out",
    }


def test_the_file_wins_over_detection() -> None:
    settings = sources(effective.settings(spec(), FILE, plan()))

    assert settings == {
        "rootDirectory": ("web", "scalemesh.json"),
        "installCommand": ("npm install", "scalemesh.json"),
        "buildCommand": ("npm run build:file", "scalemesh.json"),
        "outputDirectory": ("public", "scalemesh.json"),
        "framework": ("vite", "scalemesh.json"),
        "nodeVersion": ("22", "scalemesh.json"),
        "ignoreCommand": ("exit 1", "scalemesh.json"),
        "watchPaths": (["shared"], "scalemesh.json"),
        "cache": ([".cache/images"], "scalemesh.json"),
        "cleanUrls": (True, "scalemesh.json"),
        "trailingSlash": (False, "scalemesh.json"),
        "previews": ({"enabled": True, "include": ["feat/*"], "exclude": []}, "scalemesh.json"),
    }
    assert effective.given(spec(), FILE) == {
        "root_directory": "web",
        "install_command": "npm install",
        "build_command": "npm run build:file",
        "output_directory": "public",
    }


def test_detection_and_defaults_fill_the_rest() -> None:
    settings = sources(effective.settings(spec(), SiteConfig(), plan(build=None)))

    assert settings == {
        "rootDirectory": (".", "default"),
        "installCommand": ("npm ci", "detected"),
        "buildCommand": (None, "default"),
        "outputDirectory": ("dist", "detected"),
        "framework": ("vite", "detected"),
        "nodeVersion": (None, "default"),
        "ignoreCommand": (None, "default"),
        "watchPaths": ([], "default"),
        "cache": ([], "default"),
        "cleanUrls": (False, "default"),
        "trailingSlash": (None, "default"),
        "previews": ({"enabled": True, "include": [], "exclude": []}, "default"),
    }


def test_the_files_framework_shows_by_the_name_detection_knows_it_by() -> None:
    file = SiteConfig(source="vercel.json", framework="nextjs")

    settings = sources(effective.settings(spec(), file, plan(framework="next")))

    assert settings["framework"] == ("next", "vercel.json")


def test_env_lists_names_and_scopes_and_the_project_wins() -> None:
    project = spec(
        env={"SHARED": "secret", "TOKEN": "t0ps3cret"}, env_scopes={"SHARED": "production"}
    )

    assert effective.env_scopes(project, FILE) == {
        "API_URL": "scalemesh.json: production",
        "SHARED": "production",
        "TOKEN": "all",
    }


def test_the_manifest_config_holds_fields_env_and_warnings() -> None:
    config = effective.manifest_config(spec(env={"X": "v"}), FILE, plan())

    assert config["file"] == "scalemesh.json"
    assert config["fields"]["buildCommand"] == {
        "value": "npm run build:file",
        "source": "scalemesh.json",
    }
    assert config["env"] == {
        "API_URL": "scalemesh.json: production",
        "SHARED": "scalemesh.json: production",
        "X": "all",
    }
    assert config["warnings"] == ["scalemesh.json: something"]


def test_the_log_shows_each_field_with_its_source_and_never_a_value_of_env() -> None:
    file = SiteConfig(
        source="vercel.json",
        rules={"redirects": [{}, {}], "rewrites": [], "headers": [{}]},
        previews=Previews(enabled=True, include=("a", "b"), exclude=("c",)),
        env={"FROM_FILE": "value-from-file"},
        env_scopes={"FROM_FILE": "preview"},
    )
    project = spec(env={"SECRET": "value-from-project"}, env_scopes={"SECRET": "branch:main"})

    lines = effective.log_lines(project, file, plan(install=None))

    assert lines == [
        "Effective config:",
        "  rootDirectory: . (default)",
        "  installCommand: none (default)",
        "  buildCommand: npm run build (detected)",
        "  outputDirectory: dist (detected)",
        "  framework: vite (detected)",
        "  nodeVersion: none (default)",
        "  ignoreCommand: none (default)",
        "  watchPaths: none (default)",
        "  cache: none (default)",
        "  cleanUrls: false (default)",
        "  trailingSlash: none (default)",
        "  previews: enabled; include: a, b; exclude: c (vercel.json)",
        "Rules from vercel.json: 2 redirects, 0 rewrites, 1 headers",
        "Env: FROM_FILE (vercel.json: preview), SECRET (branch:main)",
    ]
    assert not any("value-from" in line for line in lines)


@pytest.mark.parametrize(
    ("previews", "shown"),
    [(Previews(enabled=False), "disabled"), (Previews(exclude=("x",)), "enabled; exclude: x")],
)
def test_previews_read_as_a_sentence(previews: Previews, shown: str) -> None:
    file = SiteConfig(source="scalemesh.json", previews=previews, watch_paths=("a", "b"))

    lines = effective.log_lines(spec(), file, plan())

    assert f"  previews: {shown} (scalemesh.json)" in lines
    assert "  watchPaths: a, b (scalemesh.json)" in lines
    assert lines[-1] == "Env: no variables"


def test_the_file_lines_name_the_file_and_each_warning() -> None:
    assert effective.file_lines(SiteConfig()) == [
        "Config file: none (no scalemesh.json, vercel.json or netlify.toml)"
    ]
    assert effective.file_lines(FILE) == [
        "Config file: scalemesh.json",
        "Warning: scalemesh.json: something",
    ]
