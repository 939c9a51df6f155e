"""Build cache archives as hostile input: what an earlier build could put in one is refused
member by member (absolute paths, `..`, symlinks and hard links leaving the build's
directories, devices), a symlink already in the checkout is never followed, a corrupt or
overlong archive stops with `ArchiveError`; and writing one reads only the build user's own
files, stores symlinks without following them and stops at its cap."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import zstandard

from builder.cache_archive import (
    FORMAT,
    MAX_DEPTH,
    META,
    ArchiveError,
    ArchiveTooLarge,
    extract_archive,
    write_archive,
)
from tests.support.build_cache import Member, archive, everything, members


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    found = {"home": tmp_path / "build" / "home", "repo": tmp_path / "build" / "repo"}
    for directory in found.values():
        directory.mkdir(parents=True)
    return found


def extract(tmp_path: Path, roots: dict[str, Path], members: list[Member], **kw: Any) -> Any:
    source = archive(tmp_path / "cache.tar.zst", members, kw.pop("meta", None))
    return extract_archive(
        source, roots, kw.pop("choose", everything), max_bytes=kw.pop("max_bytes", 1 << 20)
    )


def test_plain_members_are_extracted_with_set_id_bits_dropped(
    tmp_path: Path, roots: dict[str, Path]
) -> None:
    done = extract(
        tmp_path,
        roots,
        [
            ("dir", "repo/node_modules", b""),
            ("file", "repo/node_modules/a/index.js", b"module.exports = 1\n"),
            ("symlink", "repo/node_modules/.bin/a", "../a/index.js"),
            ("file", "home/.npm/_cacache/x", b"cached"),
        ],
    )

    assert done.refused == []
    assert done.files == 2
    assert done.meta == {"format": FORMAT, "lockfile": "abc"}
    script = roots["repo"] / "node_modules" / "a" / "index.js"
    assert script.read_text() == "module.exports = 1\n"
    assert oct(script.stat().st_mode & 0o7777) == "0o755"
    assert os.readlink(roots["repo"] / "node_modules" / ".bin" / "a") == "../a/index.js"
    assert (roots["home"] / ".npm" / "_cacache" / "x").read_bytes() == b"cached"


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (("file", "/etc/cron.d/evil", b"x"), "an absolute path"),
        (("file", "repo/../../escaped", b"x"), "a path with '..', '.' or empty parts"),
        (("file", "repo/a/../../escaped", b"x"), "a path with '..', '.' or empty parts"),
        (("file", "elsewhere/file", b"x"), "outside home, repo"),
        (("file", "repo", b"x"), "outside home, repo"),
        (("symlink", "repo/node_modules/evil", "/etc"), "a symlink leaving its root"),
        (("symlink", "repo/node_modules/evil", "../../../etc"), "a symlink leaving its root"),
        (("symlink", "home/evil", ".."), "a symlink leaving its root"),
        (("hardlink", "repo/shadow", "/etc/shadow"), "a hard link"),
        (("hardlink", "repo/copy", "repo/node_modules/a"), "a hard link"),
        (("char", "repo/null", b""), "a device, FIFO or other special file"),
        (("fifo", "repo/pipe", b""), "a device, FIFO or other special file"),
    ],
)
def test_hostile_members_are_refused_and_nothing_lands_outside(
    tmp_path: Path, roots: dict[str, Path], member: Member, why: str
) -> None:
    done = extract(tmp_path, roots, [member, ("file", "repo/fine", b"ok")])

    assert done.refused == [f"{member[1]!r}: {why}"]
    assert (roots["repo"] / "fine").read_bytes() == b"ok"
    assert not (tmp_path / "escaped").exists()
    made = {path.relative_to(tmp_path) for path in tmp_path.rglob("*")}
    assert made == {
        Path("cache.tar.zst"),
        Path("build"),
        Path("build/home"),
        Path("build/repo"),
        Path("build/repo/fine"),
    }


def test_a_symlink_already_in_the_checkout_is_never_followed(
    tmp_path: Path, roots: dict[str, Path]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    # The repository committed node_modules as a symlink to somewhere else.
    (roots["repo"] / "node_modules").symlink_to(outside)
    # An archive member that makes a symlink, then writes through it.
    done = extract(
        tmp_path,
        roots,
        [
            ("file", "repo/node_modules/planted", b"x"),
            ("symlink", "repo/inner", "sub"),
            ("dir", "repo/sub", b""),
            ("file", "repo/inner/through", b"x"),
        ],
    )

    assert list(outside.iterdir()) == []
    assert done.refused == [
        "'repo/node_modules/planted': a directory on its path is a symlink or not a directory",
        "'repo/inner/through': a directory on its path is a symlink or not a directory",
    ]


def test_what_the_checkout_has_wins_over_the_cache(tmp_path: Path, roots: dict[str, Path]) -> None:
    (roots["repo"] / "kept.txt").write_text("committed")

    done = extract(tmp_path, roots, [("file", "repo/kept.txt", b"cached")])

    assert (roots["repo"] / "kept.txt").read_text() == "committed"
    assert done.skipped == 1
    assert done.files == 0


def test_the_chooser_leaves_members_out(tmp_path: Path, roots: dict[str, Path]) -> None:
    def no_modules(meta: Mapping[str, Any]) -> Callable[[str], bool]:
        assert meta["lockfile"] == "abc"
        return lambda name: "node_modules" not in name.split("/")

    done = extract(
        tmp_path,
        roots,
        [("file", "repo/node_modules/a/x", b"1"), ("file", "home/.npm/y", b"2")],
        choose=no_modules,
    )

    assert not (roots["repo"] / "node_modules").exists()
    assert (roots["home"] / ".npm" / "y").read_bytes() == b"2"
    assert done.skipped == 1


@pytest.mark.parametrize(
    ("data", "meta", "message"),
    [
        (b"garbage", None, ""),
        (None, {}, f"it does not start with {META}"),
        (None, {"format": 99}, f"its {META} is not of format {FORMAT}"),
    ],
)
def test_an_unreadable_archive_is_an_archive_error(
    tmp_path: Path,
    roots: dict[str, Path],
    data: bytes | None,
    meta: dict[str, Any] | None,
    message: str,
) -> None:
    source = archive(tmp_path / "cache.tar.zst", [("file", "repo/a", b"x")], meta)
    if data is not None:
        source.write_bytes(data)

    with pytest.raises(ArchiveError) as raised:
        extract_archive(source, roots, everything, max_bytes=1 << 20)

    assert message in str(raised.value)


def test_a_meta_that_is_not_json_is_an_archive_error(
    tmp_path: Path, roots: dict[str, Path]
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(META)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"{{{"))
    source = tmp_path / "cache.tar.zst"
    source.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))

    with pytest.raises(ArchiveError, match="is not JSON"):
        extract_archive(source, roots, everything, max_bytes=1 << 20)


def test_an_archive_that_unpacks_past_its_bound_stops(
    tmp_path: Path, roots: dict[str, Path]
) -> None:
    zeros = b"\0" * (600 << 10)

    with pytest.raises(ArchiveError, match="unpacks to more than 1048576 bytes"):
        extract(tmp_path, roots, [("file", "repo/a", zeros), ("file", "repo/b", zeros)])

    assert (roots["repo"] / "a").stat().st_size == len(zeros)
    assert not (roots["repo"] / "b").exists()


# --- writing ------------------------------------------------------------------------------


def test_writing_keeps_own_files_and_inside_symlinks_only(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    modules = repo / "node_modules"
    (modules / "a").mkdir(parents=True)
    (modules / "a" / "index.js").write_text("1")
    (modules / ".bin").mkdir()
    (modules / ".bin" / "a").symlink_to("../a/index.js")
    (modules / "leak").symlink_to("/etc")
    (modules / "up").symlink_to("../../..")
    os.mkfifo(modules / "pipe")
    foreign = modules / "a" / "foreign.txt"
    foreign.write_text("someone else's")
    os.chown(foreign, 12345, 12345)
    (repo / "linked").symlink_to(modules)  # a tree asked for through a symlink: not stored
    target = tmp_path / "out.tar.zst"

    size = write_archive(
        target,
        {"format": FORMAT},
        {"repo": {"node_modules": repo, "linked": repo, "missing": repo}},
        cap=1 << 20,
        owner=os.getuid(),
    )

    assert size == target.stat().st_size
    roots = {"repo": tmp_path / "again"}
    roots["repo"].mkdir()
    done = extract_archive(target, roots, everything, max_bytes=1 << 20)
    found = sorted(str(path.relative_to(roots["repo"])) for path in roots["repo"].rglob("*"))
    assert found == [
        "node_modules",
        "node_modules/.bin",
        "node_modules/.bin/a",
        "node_modules/a",
        "node_modules/a/index.js",
    ]
    assert done.refused == []


def test_writing_stops_at_the_cap(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".npm").mkdir(parents=True)
    (home / ".npm" / "blob").write_bytes(os.urandom(300 << 10))

    with pytest.raises(ArchiveTooLarge):
        write_archive(
            tmp_path / "out.tar.zst",
            {"format": FORMAT},
            {"home": {".npm": home}},
            cap=100 << 10,
            owner=os.getuid(),
        )


def test_a_symlink_over_a_path_the_checkout_has_is_skipped(
    tmp_path: Path, roots: dict[str, Path]
) -> None:
    (roots["repo"] / "x").write_text("committed")

    done = extract(tmp_path, roots, [("symlink", "repo/x", "y")])

    assert (roots["repo"] / "x").read_text() == "committed"
    assert done.skipped == 1


def test_writing_stops_descending_past_the_depth_limit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    deep = home.joinpath(".npm", *["d"] * (MAX_DEPTH + 3))
    deep.mkdir(parents=True)
    (deep / "file").write_text("too deep")
    target = tmp_path / "out.tar.zst"

    write_archive(
        target, {"format": FORMAT}, {"home": {".npm": home}}, cap=1 << 20, owner=os.getuid()
    )

    names = members(target)["names"]
    assert max(name.count("/") for name in names) == MAX_DEPTH + 1
    assert not any(name.endswith("/file") for name in names)


def test_extraction_stops_unread_at_the_member_until_names(
    tmp_path: Path, roots: dict[str, Path]
) -> None:
    source = archive(
        tmp_path / "cache.tar.zst",
        [
            ("file", "repo/node_modules/a.js", b"1"),
            ("file", "home/.npm/x", b"cached"),
            ("file", "repo/late.txt", b"after"),
        ],
    )

    done = extract_archive(
        source, roots, everything, max_bytes=1 << 20, until=lambda name: name.startswith("home/")
    )

    assert done.stopped == "home/.npm/x"
    assert (roots["repo"] / "node_modules" / "a.js").read_text() == "1"
    assert not (roots["home"] / ".npm").exists()
    assert not (roots["repo"] / "late.txt").exists()
    assert extract_archive(source, roots, everything, max_bytes=1 << 20).stopped is None


def test_a_directory_member_after_its_files_is_made_once(
    tmp_path: Path, roots: dict[str, Path]
) -> None:
    done = extract(
        tmp_path,
        roots,
        [("file", "repo/a/b.js", b"1"), ("dir", "repo/a", b""), ("dir", "repo/a", b"")],
    )

    assert (roots["repo"] / "a" / "b.js").read_text() == "1"
    assert done.refused == []


def test_an_archive_that_cannot_be_opened_is_an_archive_error(
    tmp_path: Path, roots: dict[str, Path]
) -> None:
    with pytest.raises(ArchiveError, match="No such file"):
        extract_archive(tmp_path / "gone.tar.zst", roots, everything, max_bytes=1 << 20)
