"""Detection reads the checkout as the builder's user: never through a symlink out of it, and
its errors never quote what it read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.detect import detect
from builder.errors import BuildError

CANARY = "SECRET-CANARY-7d1e"
PACKAGE = json.dumps({"name": "site", "scripts": {"build": "vite build"}})
NPM_LOCK = json.dumps({"lockfileVersion": 3, "packages": {}})


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("package.json", {}),
        ("index.html", {}),
        ("yarn.lock", {"package.json": PACKAGE}),
        (".yarnrc.yml", {"package.json": PACKAGE, "yarn.lock": ""}),
        ("apps/web/package.json", {"package.json": PACKAGE, "package-lock.json": NPM_LOCK}),
    ],
)
def test_a_symlink_out_of_the_repository_is_never_read(
    tmp_path: Path, name: str, files: dict[str, str]
) -> None:
    secret = write(tmp_path / "data", {"secret_key": json.dumps({"key": CANARY})}) / "secret_key"
    repo = write(tmp_path / "repo", files)
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).symlink_to(secret)
    root = {"root_directory": "apps/web"} if name.startswith("apps/") else {}

    with pytest.raises(BuildError) as failure:
        detect(repo, **root)

    assert str(failure.value) == (
        f"{name} is a symlink to outside the repository; only the repository's own files are read"
    )


def test_a_package_json_symlinked_to_etc_passwd_is_refused(tmp_path: Path) -> None:
    repo = write(tmp_path / "repo", {"index.html": ""})
    (repo / "package.json").symlink_to("/etc/passwd")

    with pytest.raises(BuildError, match=r"^package\.json is a symlink to outside the repository"):
        detect(repo)


def test_a_symlink_inside_the_repository_is_read(tmp_path: Path) -> None:
    repo = write(
        tmp_path / "repo", {"config/package.json": json.dumps({"dependencies": {"vite": "5"}})}
    )
    (repo / "package.json").symlink_to("config/package.json")

    assert detect(repo).framework == "vite"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (f'{{"name": "{CANARY}",, }}'.encode(), "package.json is not valid JSON (line 1, column"),
        (f'{{"name": "{CANARY}\\q"}}'.encode(), "package.json is not valid JSON (line 1, column"),
        (
            b'{"name": "\xc3\x28' + CANARY.encode() + b'"}',
            "package.json is not UTF-8 text (byte 10)",
        ),
        (CANARY.encode(), "package.json is not valid JSON (line 1, column 1)"),
        (b" " * (4 << 20) + b"{}", "package.json is larger than 4 MB"),
    ],
)
def test_errors_never_quote_package_json(tmp_path: Path, content: bytes, message: str) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "package.json").write_bytes(content)

    with pytest.raises(BuildError) as failure:
        detect(repo)

    assert str(failure.value).startswith(message)
    assert CANARY not in str(failure.value)
    assert "\\x" not in repr(str(failure.value))
