"""requirements.lock: every package at one version with its hashes, and the pins it came from.

`make lock` writes it (uv, from pyproject.toml); `make` installs exactly it with
`--require-hashes`. A pin changed or added in pyproject.toml without `make lock` fails here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
LOCK = ROOT / "requirements.lock"
_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> list[tuple[str, str, list[str]]]:
    """Each locked package: name, version and the hashes listed for it. A universal lock may
    hold two versions of one package, under markers that exclude each other."""
    entries: list[tuple[str, str, list[str]]] = []
    for line in LOCK.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ENTRY.match(line)
        if match:
            entries.append((normalise(match[1]), match[2], []))
        else:
            assert entries, f"not a locked package: {line!r}"
            assert stripped.startswith("--hash=sha256:"), f"not a hash: {line!r}"
            entries[-1][2].append(stripped.removeprefix("--hash=sha256:").rstrip(" \\"))
    return entries


def pins() -> dict[str, str]:
    """Every `name==version` pyproject.toml asks for: dependencies, the dev extra, setuptools."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [
        *project["project"]["dependencies"],
        *project["project"]["optional-dependencies"]["dev"],
        *project["build-system"]["requires"],
    ]
    found: dict[str, str] = {}
    for requirement in wanted:
        name, equals, version = requirement.partition("==")
        assert equals, f"{requirement!r} is not pinned with =="
        found[normalise(name.split("[")[0])] = version.strip()
    return found


def test_every_locked_package_has_hashes() -> None:
    entries = locked()

    assert len(entries) > 100
    for name, version, hashes in entries:
        assert hashes, f"{name}=={version} has no hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in hashes), name


def test_the_lock_has_every_pin_of_pyproject_at_its_version() -> None:
    versions: dict[str, set[str]] = {}
    for name, version, _ in locked():
        versions.setdefault(name, set()).add(version)

    wrong = {
        name: (version, sorted(versions.get(name, ())))
        for name, version in pins().items()
        if versions.get(name) != {version}
    }

    assert wrong == {}, f"pyproject.toml's pin, the lock's versions: run `make lock` ({wrong})"


def test_make_installs_the_lock_with_hashes_and_nothing_else() -> None:
    makefile = (ROOT / "Makefile").read_text()

    assert "pip install --quiet --require-hashes --no-deps -r $(LOCK)" in makefile
    assert "pip install --quiet --no-deps --no-build-isolation -e ." in makefile
    assert "$(BIN)/python -m pip check" in makefile
    assert "--generate-hashes" in makefile
