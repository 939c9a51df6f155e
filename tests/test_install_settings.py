"""What besides the lockfile decides the installed tree, in the build cache's lockfile key:
the app's `.npmrc`, `NODE_ENV` and npm's tree-shaping settings; never fetch-only settings or
credentials."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.build_cache import lockfile_key
from builder.detect import detect
from builder.install_settings import tree_settings


def _site(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text('{"name": "site", "scripts": {"build": "vite build"}}')
    (root / "package-lock.json").write_text("{}")
    return root


def test_the_lockfile_key_covers_the_apps_npmrc(tmp_path: Path) -> None:
    plan = detect(_site(tmp_path))
    without = lockfile_key(plan)
    (tmp_path / ".npmrc").write_text("omit=dev\n")
    omit_dev = lockfile_key(plan)
    (tmp_path / ".npmrc").write_text("legacy-peer-deps=true\n")
    legacy = lockfile_key(plan)
    (tmp_path / ".npmrc").write_text("-")  # what an absent file is hashed as, but for its length
    dash = lockfile_key(plan)

    assert len({without, omit_dev, legacy, dash}) == 4
    assert None not in (without, omit_dev, legacy, dash)
    (tmp_path / ".npmrc").write_text("omit=dev\n")
    assert lockfile_key(plan) == omit_dev


def test_an_app_in_a_subdirectory_is_keyed_by_its_own_npmrc(tmp_path: Path) -> None:
    _site(tmp_path / "web")
    plan = detect(tmp_path, root_directory="web")
    before = lockfile_key(plan)
    # npm reads the .npmrc beside the package.json it installs, not the repository's.
    (tmp_path / ".npmrc").write_text("omit=dev\n")

    assert before is not None
    assert lockfile_key(plan) == before
    (tmp_path / "web" / ".npmrc").write_text("omit=dev\n")
    assert lockfile_key(plan) not in (None, before)


@pytest.mark.parametrize("kind", ["symlink to a host file", "fifo", "directory"])
def test_an_npmrc_that_is_no_plain_file_means_no_key(tmp_path: Path, kind: str) -> None:
    """A repository cannot have the builder read a host file into its key, nor hang it on a
    FIFO no one writes to: the key is refused, and node_modules is never restored."""
    plan = detect(_site(tmp_path))
    if kind == "fifo":
        os.mkfifo(tmp_path / ".npmrc")
    elif kind == "directory":
        (tmp_path / ".npmrc").mkdir()
    else:
        (tmp_path / ".npmrc").symlink_to("/etc/passwd")

    assert lockfile_key(plan) is None


@pytest.mark.parametrize(
    "env",
    [
        {"NODE_ENV": "production"},
        {"NODE_ENV": "development"},
        {"npm_config_omit": "dev"},
        {"NPM_CONFIG_OMIT": "dev"},
        {"npm_config_legacy_peer_deps": "true"},
        {"npm_config_install-strategy": "linked"},
        {"npm_config_include": "optional"},
        {"npm_config_os": "darwin"},
    ],
)
def test_settings_that_shape_the_tree_change_the_key(tmp_path: Path, env: dict[str, str]) -> None:
    plan = detect(_site(tmp_path))

    assert lockfile_key(plan, "/usr/bin", env) not in (None, lockfile_key(plan, "/usr/bin"))
    assert lockfile_key(plan, "/usr/bin", env) == lockfile_key(plan, "/usr/bin", dict(env))


def test_fetch_only_settings_credentials_and_other_variables_leave_the_key(
    tmp_path: Path,
) -> None:
    plan = detect(_site(tmp_path))
    env = {
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        "NPM_CONFIG_OFFLINE": "true",
        "npm_config_registry": "https://registry.example/",
        "npm_config_//registry.example/:_authToken": "npm_secret",
        "npm_config__auth": "dXNlcjpwYXNz",
        "npm_config_@acme:registry": "https://acme.example/",
        "NPM_TOKEN": "npm_secret",
        "VITE_API_URL": "https://api.example",
        "PATH": "/usr/bin",
    }

    assert lockfile_key(plan, "/usr/bin", env) == lockfile_key(plan, "/usr/bin")
    assert tree_settings(env) == []


def test_tree_settings_are_named_once_lowercased_and_sorted() -> None:
    env = {"npm_config_Omit": "dev", "NODE_ENV": "production", "npm_config_global-style": "1"}

    expected = [("NODE_ENV", "production"), ("global_style", "1"), ("omit", "dev")]
    assert tree_settings(env) == expected
