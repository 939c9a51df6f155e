"""Staging the output: the limits that stop it, and races that try to slip a file past it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from builder import staging
from builder.errors import BuildError
from builder.spec import BuildLimits
from tests.support.staging import SECRET, Output


@pytest.fixture
def out(tmp_path: Path) -> Output:
    return Output(tmp_path)


# --- limits -----------------------------------------------------------------------------------


def test_too_many_files(out: Output) -> None:
    out.write({f"{n}.html": "x" for n in range(4)})

    with pytest.raises(BuildError) as failure:
        out.stage(limits=BuildLimits(max_files=3))

    assert str(failure.value).startswith("dist/")
    assert str(failure.value).endswith(
        ".html is one file too many: the output directory may hold at most 3 files "
        "(SCALEMESH_BUILD_MAX_FILES)"
    )
    assert len(list((out.tmp / "staging-1").iterdir())) == 3


def test_too_large_a_file(out: Output) -> None:
    out.write({"index.html": "home", "video.mp4": b"\0" * (3 << 19)})

    with pytest.raises(BuildError) as failure:
        out.stage(limits=BuildLimits(max_file_mb=1))

    assert str(failure.value) == (
        "dist/video.mp4 is 1.5 MB; one file may be at most 1 MB (SCALEMESH_BUILD_MAX_FILE_MB)"
    )
    assert out.staged_bytes() <= len("home")


def test_too_large_an_output(out: Output) -> None:
    out.write({name: b"\0" * (600 << 10) for name in ("a.bin", "b.bin", "c.bin")})

    with pytest.raises(BuildError) as failure:
        out.stage(limits=BuildLimits(max_output_mb=1))

    assert str(failure.value).startswith("dist/")
    assert str(failure.value).endswith(
        ".bin takes the output directory past 1 MB, the most all its files may hold together "
        "(SCALEMESH_BUILD_MAX_OUTPUT_MB)"
    )
    assert out.staged_bytes() == 600 << 10  # the second file was never copied


def test_links_to_directories_cannot_make_the_walk_endless(out: Output) -> None:
    # Each level holds two links to the next: 2^20 paths, and no file at all.
    for level in range(20):
        (out.dist / f"d{level}").mkdir()
        out.link({f"d{level}/a": f"../d{level + 1}", f"d{level}/b": f"../d{level + 1}"})
    (out.dist / "d20").mkdir()

    with pytest.raises(BuildError, match=r"is one entry too many: .* at most 100 files"):
        out.stage(limits=BuildLimits(max_files=100))


def test_too_deep_a_tree(out: Output) -> None:
    deep = out.dist.joinpath(*["a"] * (staging.MAX_DEPTH + 1))
    deep.mkdir(parents=True)
    (deep / "index.html").write_text("x")

    with pytest.raises(BuildError, match=r"^dist/a/a/.*/a/ is nested more than 100 directories"):
        out.stage()


# --- races ------------------------------------------------------------------------------------


@pytest.fixture
def swap_before_open(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make a change to the tree just before staging opens a given name: the race, on cue."""
    real_open = os.open
    changes: dict[str, Callable[[int], None]] = {}

    def open_after_change(path: object, flags: int, *args: object, **kwargs: object) -> int:
        change = changes.pop(str(path), None)
        if change is not None:
            change(kwargs.get("dir_fd"))  # type: ignore[arg-type]
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_after_change)
    return lambda name, change: changes.__setitem__(name, change)


def test_an_entry_swapped_after_it_was_checked_is_not_followed(
    out: Output, swap_before_open: Callable[..., None]
) -> None:
    out.write({"index.html": "home", "x.txt": "public", "y.txt": "public", "z.txt": "public"})
    out.write({"d/file.txt": "public"})
    (out.outside / "dir").mkdir()
    (out.outside / "dir" / "file.txt").write_bytes(SECRET)
    (out.tmp / "other.txt").write_text("other")

    def file_to_symlink(dir_fd: int) -> None:
        os.unlink("x.txt", dir_fd=dir_fd)
        os.symlink(out.secret, "x.txt", dir_fd=dir_fd)

    def to_other_file(dir_fd: int) -> None:
        os.rename(out.tmp / "other.txt", out.dist / "y.txt")

    def to_fifo(dir_fd: int) -> None:
        os.unlink("z.txt", dir_fd=dir_fd)
        os.mkfifo("z.txt", dir_fd=dir_fd)

    def dir_to_symlink(dir_fd: int) -> None:
        os.rename(out.dist / "d", out.tmp / "d")
        os.symlink(out.outside / "dir", "d", dir_fd=dir_fd)

    swap_before_open("x.txt", file_to_symlink)
    swap_before_open("y.txt", to_other_file)
    swap_before_open("z.txt", to_fifo)
    swap_before_open("d", dir_to_symlink)

    files = out.stage()

    assert files == {"index.html": b"home"}
    changed = "it changed while it was read"
    assert sorted(out.notes) == [
        f"Skipped dist/d/: {changed} (Not a directory)",
        f"Skipped dist/x.txt: {changed} (Too many levels of symbolic links)",
        f"Skipped dist/y.txt: {changed}",
        f"Skipped dist/z.txt: {changed}",
    ]


def test_a_symlink_swapped_in_during_staging_never_publishes_the_outside_file(
    out: Output,
) -> None:
    out.write({"index.html": "home", "x.txt": "public", "d/file.txt": "public"})
    (out.outside / "dir").mkdir()
    (out.outside / "dir" / "file.txt").write_bytes(SECRET)
    stop = threading.Event()
    failures: list[BaseException] = []
    swaps = 0

    def swap() -> None:
        nonlocal swaps
        try:
            while not stop.is_set():
                swap_once()
                swaps += 1
        except BaseException as exc:  # the test fails on it below
            failures.append(exc)

    def swap_once() -> None:
        (out.dist / ".link").symlink_to(out.secret)
        os.replace(out.dist / ".link", out.dist / "x.txt")
        (out.dist / ".file").write_text("public")
        os.replace(out.dist / ".file", out.dist / "x.txt")
        os.rename(out.dist / "d", out.dist / ".d")
        (out.dist / "d").symlink_to(out.outside / "dir")
        os.unlink(out.dist / "d")
        os.rename(out.dist / ".d", out.dist / "d")

    swapper = threading.Thread(target=swap)
    swapper.start()
    published: list[bytes] = []
    try:
        for _ in range(300):
            published.extend(out.stage().values())
    finally:
        stop.set()
        swapper.join()

    assert failures == []
    assert swaps > 0
    assert SECRET not in published
    assert set(published) <= {b"home", b"public"}
