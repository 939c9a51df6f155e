"""Detection turns a checkout (plus the project's overrides) into a build plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builder.detect import detect
from builder.errors import BuildError
from tests.support.detection import NPM_LOCK, package, summary, write

CASES: list[tuple[str, dict[str, str], dict[str, str], dict[str, Any]]] = [
    # (id, files, overrides, expected subset of the summary)
    (
        "npm with package-lock",
        {"package.json": package(deps={"vite": "5"}), "package-lock.json": NPM_LOCK},
        {},
        {
            "framework": "vite",
            "manager": "npm",
            "install": "npm ci",
            "build": "npm run build",
            "output": "dist",
            "install_dir": ".",
        },
    ),
    (
        "npm with shrinkwrap",
        {"package.json": package(dev={"astro": "4"}), "npm-shrinkwrap.json": NPM_LOCK},
        {},
        {"framework": "astro", "install": "npm ci", "output": "dist"},
    ),
    (
        "no lockfile",
        {"package.json": package(deps={"react-scripts": "5"})},
        {},
        {"framework": "create-react-app", "install": "npm install", "output": "build"},
    ),
    (
        "pnpm",
        {"package.json": package(deps={"@docusaurus/core": "3"}), "pnpm-lock.yaml": ""},
        {},
        {
            "framework": "docusaurus",
            "manager": "pnpm",
            "install": "corepack pnpm install --frozen-lockfile",
            "build": "corepack pnpm run build",
            "output": "build",
        },
    ),
    (
        "yarn classic",
        {"package.json": package(dev={"@sveltejs/kit": "2", "vite": "5"}), "yarn.lock": ""},
        {},
        {
            "framework": "sveltekit",
            "manager": "yarn",
            "install": "corepack yarn install --frozen-lockfile",
            "build": "corepack yarn run build",
            "output": "build",
        },
    ),
    (
        "yarn berry by .yarnrc.yml",
        {"package.json": package(deps={"next": "14"}), "yarn.lock": "", ".yarnrc.yml": ""},
        {},
        {"framework": "next", "install": "corepack yarn install --immutable", "output": "out"},
    ),
    (
        "yarn berry by packageManager",
        {"package.json": package(manager="yarn@4.1.0+sha256.abc"), "yarn.lock": ""},
        {},
        {"install": "corepack yarn install --immutable"},
    ),
    (
        "yarn classic by packageManager",
        {"package.json": package(manager="yarn@1.22.19"), "yarn.lock": ""},
        {},
        {"install": "corepack yarn install --frozen-lockfile"},
    ),
    (
        "packageManager without lockfile",
        {"package.json": package(manager="pnpm@9.1.0")},
        {},
        {"manager": "pnpm", "install": "corepack pnpm install", "build": "corepack pnpm run build"},
    ),
    (
        "packageManager chooses between lockfiles",
        {
            "package.json": package(manager="pnpm@9"),
            "package-lock.json": NPM_LOCK,
            "pnpm-lock.yaml": "",
        },
        {},
        {"manager": "pnpm"},
    ),
    (
        "npm wins a tie without packageManager",
        {"package.json": package(), "package-lock.json": NPM_LOCK, "yarn.lock": ""},
        {},
        {"manager": "npm"},
    ),
    (
        "a bun lockfile beside a supported one",
        {"package.json": package(), "bun.lockb": "", "package-lock.json": NPM_LOCK},
        {},
        {"manager": "npm"},
    ),
    (
        "a packageManager without a version",
        {"package.json": package(manager="yarn@"), "yarn.lock": ""},
        {},
        {"install": "corepack yarn install --frozen-lockfile"},
    ),
    (
        "a malformed packageManager is ignored",
        {"package.json": package(manager="!!"), "yarn.lock": ""},
        {},
        {"install": "corepack yarn install --frozen-lockfile"},
    ),
    (
        "eleventy",
        {"package.json": package(dev={"@11ty/eleventy": "2"}), "package-lock.json": NPM_LOCK},
        {},
        {"framework": "eleventy", "output": "_site"},
    ),
    (
        "vue on vite",
        {"package.json": package(deps={"vue": "3"}, dev={"@vitejs/plugin-vue": "5", "vite": "5"})},
        {},
        {"framework": "vite", "output": "dist"},
    ),
    (
        "no build script",
        {"package.json": package(build=False, deps={"vite": "5"})},
        {},
        {"framework": "vite", "build": None, "install": "npm install"},
    ),
    (
        "unknown framework",
        {"package.json": package(deps={"lodash": "4"})},
        {},
        {"framework": "custom", "output": "dist", "build": "npm run build"},
    ),
    (
        "odd dependency sections are ignored",
        {"package.json": json.dumps({"dependencies": ["vite"], "scripts": "build"})},
        {},
        {"framework": "custom", "build": None},
    ),
    (
        "package.json beside index.html with nothing to build",
        {"package.json": package(build=False), "index.html": "<p>hi"},
        {},
        {"framework": "static", "output": ".", "install": "npm install", "build": None},
    ),
    (
        "static site",
        {"index.html": "<p>hi", "style.css": ""},
        {},
        {"framework": "static", "manager": None, "install": None, "build": None, "output": "."},
    ),
    (
        "static site with a build command",
        {"Makefile": ""},
        {"build_command": "make site", "output_directory": "public/"},
        {"framework": "custom", "install": None, "build": "make site", "output": "public"},
    ),
    (
        "overrides",
        {"package.json": package(deps={"vite": "5"}), "package-lock.json": NPM_LOCK},
        {
            "install_command": "npm ci --ignore-scripts",
            "build_command": "npx vite build --mode 'staging env'",
            "output_directory": "./site/",
        },
        {
            "framework": "vite",
            "install": "npm ci --ignore-scripts",
            "build": "npx vite build --mode staging env",
            "output": "site",
        },
    ),
    (
        "sh -c is how to ask for a shell",
        {"package.json": package()},
        {"build_command": "sh -c 'npm run a && npm run b'"},
        {"build": "sh -c npm run a && npm run b"},
    ),
    (
        "monorepo: lockfile at the workspace root",
        {
            "package.json": json.dumps({"private": True, "packageManager": "pnpm@9"}),
            "pnpm-lock.yaml": "",
            "apps/web/package.json": package(deps={"astro": "4"}),
        },
        {"root_directory": "apps/web"},
        {
            "framework": "astro",
            "manager": "pnpm",
            "install": "corepack pnpm install --frozen-lockfile",
            "install_dir": ".",
            "root": "apps/web",
            "output": "dist",
            "output_path": "apps/web/dist",
        },
    ),
    (
        "monorepo: workspace root without package.json",
        {"yarn.lock": "", "apps/web/package.json": package(manager="yarn@3")},
        {"root_directory": "apps/web/"},
        {"install": "corepack yarn install --immutable", "install_dir": "."},
    ),
    (
        "monorepo: custom install runs in the root directory",
        {"pnpm-lock.yaml": "", "apps/web/package.json": package()},
        {"root_directory": "apps/web", "install_command": "pnpm install"},
        {"install": "pnpm install", "install_dir": "apps/web"},
    ),
    (
        "monorepo: output outside the root but inside the repository",
        {"package-lock.json": NPM_LOCK, "apps/web/package.json": package()},
        {"root_directory": "apps/web", "output_directory": "../../dist/apps/web"},
        {"output": "../../dist/apps/web", "output_path": "dist/apps/web"},
    ),
    (
        "a lockfile above the repository is not ours",
        {"inner/package.json": package()},
        {"root_directory": "inner"},
        {"install": "npm install", "install_dir": "inner"},
    ),
    (
        "an unsupported manager with a custom install command",
        {"package.json": package(manager="deno@2.0.0")},
        {"install_command": "deno install"},
        {"manager": None, "install": "deno install", "build": "npm run build"},
    ),
]


@pytest.mark.parametrize(
    ("files", "overrides", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_detect(
    tmp_path: Path, files: dict[str, str], overrides: dict[str, str], expected: dict[str, Any]
) -> None:
    # A lockfile just outside the repository must never be picked up.
    write(tmp_path, {"package-lock.json": NPM_LOCK})
    repo = write(tmp_path / "repo", files)

    plan = detect(repo, **overrides)

    got = summary(plan, repo)
    assert {name: got[name] for name in expected} == expected


FAILURES: list[tuple[str, dict[str, str], dict[str, str], str]] = [
    (
        "unsupported packageManager",
        {"package.json": package(manager="deno@2.0.0")},
        {},
        "deno is not supported (packageManager in package.json); use npm, pnpm, yarn or bun",
    ),
    (
        "root directory outside the repository",
        {"index.html": ""},
        {"root_directory": "../elsewhere"},
        "root_directory must be a path inside the repository, not '../elsewhere'",
    ),
    (
        "absolute root directory",
        {"index.html": ""},
        {"root_directory": "/etc"},
        "root_directory must be a path inside the repository",
    ),
    (
        "missing root directory",
        {"index.html": ""},
        {"root_directory": "apps/nope"},
        "root directory apps/nope was not found in the repository",
    ),
    (
        "output outside the repository",
        {"index.html": ""},
        {"output_directory": "../../tmp"},
        "output_directory must be a path inside the repository",
    ),
    (
        "nothing to build",
        {"README.md": "hello"},
        {},
        "found neither package.json nor index.html in the repository root; set root_directory",
    ),
    (
        "nothing to build in the root directory",
        {"docs/README.md": "hello"},
        {"root_directory": "docs"},
        "found neither package.json nor index.html in docs/",
    ),
    ("bad package.json", {"package.json": "{"}, {}, "package.json is not valid JSON"),
    ("package.json not an object", {"package.json": "[]"}, {}, "must hold a JSON object"),
    (
        "unbalanced quotes",
        {"package.json": package()},
        {"build_command": "npm run 'build"},
        "build_command cannot be read: No closing quotation",
    ),
    ("empty command", {"package.json": package()}, {"install_command": "  "}, "is empty"),
    (
        "shell syntax",
        {"package.json": package()},
        {"build_command": "npm run a && npm run b"},
        "build_command uses shell syntax (&&), but commands run without a shell",
    ),
]


@pytest.mark.parametrize(
    ("files", "overrides", "message"),
    [case[1:] for case in FAILURES],
    ids=[case[0] for case in FAILURES],
)
def test_detect_refuses(
    tmp_path: Path, files: dict[str, str], overrides: dict[str, str], message: str
) -> None:
    repo = write(tmp_path / "repo", files)

    with pytest.raises(BuildError) as failure:
        detect(repo, **overrides)

    assert message in str(failure.value)


def test_a_symlinked_root_directory_may_not_leave_the_repository(tmp_path: Path) -> None:
    write(tmp_path / "outside", {"index.html": ""})
    repo = write(tmp_path / "repo", {"index.html": ""})
    (repo / "web").symlink_to(tmp_path / "outside")

    with pytest.raises(BuildError, match="root_directory must be a path inside"):
        detect(repo, root_directory="web")


def _scripts(**scripts: str) -> str:
    return json.dumps({"name": "site", "scripts": {"build": "x", **scripts}})


def _npm(package: str, **more: str) -> dict[str, str]:
    return {"package.json": package, "package-lock.json": NPM_LOCK, **more}


SCRIPTS = ("preinstall", "install", "postinstall", "prepare", "prepublish", "preprepare")
QUIET: list[tuple[str, dict[str, str], dict[str, str], bool]] = [
    ("npm ci, no install scripts", _npm(_scripts()), {}, True),
    *((f"a {name} script", _npm(_scripts(**{name: "x"})), {}, False) for name in SCRIPTS),
    ("a postprepare script", _npm(_scripts(postprepare="x")), {}, False),
    ("npm workspaces", _npm(json.dumps({"name": "w", "workspaces": ["a"]})), {}, False),
    (
        "an app inside a workspace (the lockfile above it)",
        _npm(json.dumps({"name": "w"}), **{"apps/a/package.json": _scripts()}),
        {"root_directory": "apps/a"},
        False,
    ),
    ("no lockfile (npm install)", {"package.json": _scripts()}, {}, False),
    ("pnpm", {"package.json": _scripts(), "pnpm-lock.yaml": "lockfileVersion: '9.0'\n"}, {}, False),
    ("a custom install", _npm(_scripts()), {"install_command": "npm ci"}, False),
    ("no package.json", {"index.html": ""}, {}, False),
]


@pytest.mark.parametrize(
    ("files", "overrides", "quiet"), [case[1:] for case in QUIET], ids=[case[0] for case in QUIET]
)
def test_an_install_is_quiet_only_for_npm_ci_of_a_package_without_install_scripts(
    tmp_path: Path, files: dict[str, str], overrides: dict[str, str], quiet: bool
) -> None:
    # Quiet: over a node_modules npm made for this lockfile, the build cache runs no install.
    assert detect(write(tmp_path, files), **overrides).install_is_quiet is quiet
