"""Carrying an earlier archive's members into a new one (what a warm build left unread): the
trees written win over the same names, hostile members are dropped as extraction drops them,
an unreadable archive is an `ArchiveError`, and a bomb stops at 16 times the cap."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from builder.cache_archive import (
    FORMAT,
    ArchiveError,
    ArchiveTooLarge,
    extract_archive,
    write_archive,
)
from tests.support.build_cache import archive, everything, members


def test_writing_carries_an_earlier_archives_members_the_trees_lack(tmp_path: Path) -> None:
    earlier = archive(
        tmp_path / "earlier.tar.zst",
        [
            ("dir", "home/.npm", b""),
            ("file", "home/.npm/old", b"downloaded before"),
            ("file", "home/.npm/both", b"old copy"),
            ("symlink", "home/.npm/inside", "old"),
            ("file", "repo/node_modules/stale.js", b"not carried: only home is"),
            ("file", "home/../escape", b"x"),
            ("symlink", "home/.npm/leak", "/etc/passwd"),
            ("hardlink", "home/.npm/hard", "home/.npm/old"),
            ("fifo", "home/.npm/pipe", b""),
        ],
    )
    home = tmp_path / "home"
    (home / ".npm").mkdir(parents=True)
    (home / ".npm" / "both").write_text("this build's copy")
    (home / ".npm" / "new").write_text("downloaded now")
    target = tmp_path / "out.tar.zst"

    write_archive(
        target,
        {"format": FORMAT},
        {"home": {".npm": home}},
        cap=1 << 20,
        owner=os.getuid(),
        carry=earlier,
        carry_roots=("home",),
    )

    again = {"home": tmp_path / "again"}
    again["home"].mkdir()
    done = extract_archive(target, again, everything, max_bytes=1 << 20)
    npm = again["home"] / ".npm"
    assert sorted(path.name for path in npm.iterdir()) == ["both", "inside", "new", "old"]
    assert (npm / "both").read_text() == "this build's copy"  # what is on disk wins
    assert (npm / "old").read_text() == "downloaded before"
    assert (npm / "old").stat().st_mode & 0o7777 == 0o755  # set-id bits not carried
    assert os.readlink(npm / "inside") == "old"
    assert done.refused == []  # nothing hostile was carried over
    assert members(target)["names"].count("home/.npm") == 1


def _carry_only(tmp_path: Path, source: Path, cap: int) -> int:
    """An archive of no trees of its own, carrying `source`'s home."""
    target = tmp_path / "out.tar.zst"
    options: dict[str, Any] = {"cap": cap, "owner": os.getuid(), "carry_roots": ("home",)}
    return write_archive(target, {"format": FORMAT}, {}, carry=source, **options)


def test_an_unreadable_archive_to_carry_is_an_archive_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tar.zst"
    broken.write_bytes(b"not zstd")

    with pytest.raises(ArchiveError):
        _carry_only(tmp_path, broken, 1 << 20)


def test_carrying_stops_at_the_unpacked_bound(tmp_path: Path) -> None:
    # Zeros compress to almost nothing: the cap alone would let a bomb be carried on for ever.
    bomb = archive(tmp_path / "bomb.tar.zst", [("file", "home/.npm/zeros", bytes(64 << 10))])

    with pytest.raises(ArchiveTooLarge):
        _carry_only(tmp_path, bomb, 1 << 10)
    assert _carry_only(tmp_path, bomb, 8 << 10) > 0  # within 16 times its cap: carried
