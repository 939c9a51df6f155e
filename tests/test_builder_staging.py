"""Staging the output: what is copied for upload, what is refused, and what the copy is."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from builder.errors import BuildError
from builder.spec import BuildLimits
from builder.staging import stage
from tests.support.staging import SECRET, Output


@pytest.fixture
def out(tmp_path: Path) -> Output:
    return Output(tmp_path)


def outside(path: str) -> str:
    return f"Skipped dist/{path}: it is a symlink to outside the output directory"


# --- symlinks ---------------------------------------------------------------------------------


def test_symlinks_inside_are_published_and_those_leaving_are_not(out: Output) -> None:
    out.write({"index.html": "home", "docs/v2/page.html": "v2", "sub/file.txt": "sub"})
    (out.outside / "dir").mkdir()
    (out.outside / "dir" / "file.txt").write_bytes(SECRET)
    out.link(
        {
            "home.html": "index.html",
            "docs/latest": "v2",
            "docs/current": "./v2/",
            "docs/v2/up.html": "../../index.html",
            "docs/v2/loop": "..",
            "root": ".",
            "passwd": "/etc/passwd",
            "secret": out.secret,
            "relative-secret": "../../data/secret_key",
            "leakdir": out.outside / "dir",
            "absolute-inside": out.dist / "index.html",
            "sub/up": "../..",
            "chain": "sub/up/data/secret_key",
            "there-and-back": "../dist/index.html",
            "dangling": "nowhere",
            "not-a-dir": "index.html/x",
            "loop-a": "loop-b",
            "loop-b": "loop-a",
        }
    )

    files = out.stage()

    assert files == {
        "docs/current/page.html": b"v2",
        "docs/current/up.html": b"home",
        "docs/latest/page.html": b"v2",
        "docs/latest/up.html": b"home",
        "docs/v2/page.html": b"v2",
        "docs/v2/up.html": b"home",
        "home.html": b"home",
        "index.html": b"home",
        "sub/file.txt": b"sub",
    }
    assert sorted(out.notes) == sorted(
        [
            *map(outside, ["passwd", "secret", "relative-secret", "leakdir"]),
            *map(outside, ["absolute-inside", "sub/up", "chain", "there-and-back"]),
            "Skipped dist/dangling: it is a broken symlink (No such file or directory)",
            "Skipped dist/not-a-dir: it is a broken symlink (Not a directory)",
            "Skipped dist/loop-a: it is a symlink loop",
            "Skipped dist/loop-b: it is a symlink loop",
            "Skipped dist/root: it is a symlink to a directory that holds it",
            *(
                f"Skipped dist/docs/{name}/loop: it is a symlink to a directory that holds it"
                for name in ("v2", "latest", "current")
            ),
        ]
    )


def test_a_symlink_to_a_dotfile_is_not_published(out: Output) -> None:
    out.write({".env": "TOKEN=1", ".well-known/security.txt": "contact", "a/.b/c": "x"})
    out.link({"config.txt": ".env", "deep.txt": "a/.b/c", "wk": ".well-known"})

    files = out.stage()

    assert files == {".well-known/security.txt": b"contact", "wk/security.txt": b"contact"}
    assert "Skipped dist/config.txt: it is a symlink to a dotfile" in out.notes
    assert "Skipped dist/deep.txt: it is a symlink to a dotfile" in out.notes


# --- hard links -------------------------------------------------------------------------------


def test_hard_links_to_files_outside_the_output_are_not_published(out: Output) -> None:
    out.write({"index.html": "home", "a.txt": "shared"})
    (out.checkout / "src.txt").write_text("source")
    os.link(out.secret, out.dist / "key.txt")
    os.link(out.checkout / "src.txt", out.dist / "src.txt")
    (out.dist / "copies").mkdir()
    os.link(out.dist / "a.txt", out.dist / "copies" / "a.txt")
    os.link(out.dist / "a.txt", out.dist / "copies" / "b.txt")

    files = out.stage()

    assert files == {
        "a.txt": b"shared",
        "copies/a.txt": b"shared",
        "copies/b.txt": b"shared",
        "index.html": b"home",
    }
    assert sorted(out.notes) == [
        "Skipped dist/key.txt: it is a hard link to a file outside the output directory",
        "Skipped dist/src.txt: it is a hard link to a file outside the output directory",
    ]
    assert out.staged_bytes() == len(b"shared") * 3 + len(b"home")  # the refused copies are gone


def test_a_symlink_to_a_hard_link_of_an_outside_file_is_not_published(out: Output) -> None:
    out.write({"index.html": "home"})
    os.link(out.secret, out.dist / "key.txt")
    out.link({"alias.txt": "key.txt"})

    files = out.stage()

    assert files == {"index.html": b"home"}
    assert sorted(out.notes) == [
        "Skipped dist/alias.txt: it is a hard link to a file outside the output directory",
        "Skipped dist/key.txt: it is a hard link to a file outside the output directory",
    ]


# --- special files and dotfiles ---------------------------------------------------------------


def test_fifos_sockets_and_devices_are_skipped_without_blocking(out: Output) -> None:
    out.write({"index.html": "home"})
    os.mkfifo(out.dist / "pipe")
    os.mknod(out.dist / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.mknod(out.dist / "disk", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    out.link({"to-pipe": "pipe"})
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(out.dist / "sock"))

        files = out.stage()

    assert files == {"index.html": b"home"}
    assert sorted(out.notes) == [
        "Skipped dist/disk: it is a block device, not a file",
        "Skipped dist/null: it is a character device, not a file",
        "Skipped dist/pipe: it is a FIFO, not a file",
        "Skipped dist/sock: it is a socket, not a file",
        "Skipped dist/to-pipe: it is a FIFO, not a file",
    ]


def test_dotfiles_are_skipped_but_well_known(out: Output) -> None:
    out.write(
        {
            "index.html": "home",
            ".env": "SECRET=1",
            ".npmrc": "//registry/:_authToken=x",
            ".DS_Store": "x",
            ".git/config": "[core]",
            "assets/.cache/x": "x",
            "assets/app.js": "js",
            ".well-known/security.txt": "contact",
            ".well-known/.hidden": "x",
            "docs/.well-known/x": "x",
            ".scalemesh/manifest.json": "{}",
            "_redirects": "/a /b",
            "_headers": "/*\n  X: y",
        }
    )

    files = out.stage()

    assert sorted(files) == [
        ".well-known/security.txt",
        "_headers",
        "_redirects",
        "assets/app.js",
        "index.html",
    ]
    dotfiles = "dotfiles are not published (only .well-known/ is)"
    assert sorted(out.notes) == [
        f"Skipped dist/.DS_Store: {dotfiles}",
        f"Skipped dist/.env: {dotfiles}",
        f"Skipped dist/.git/: {dotfiles}",
        f"Skipped dist/.npmrc: {dotfiles}",
        "Skipped dist/.scalemesh/: Scale Mesh keeps its own files there",
        f"Skipped dist/.well-known/.hidden: {dotfiles}",
        f"Skipped dist/assets/.cache/: {dotfiles}",
        f"Skipped dist/docs/.well-known/: {dotfiles}",
    ]


def test_names_that_are_not_utf8_are_skipped_and_named_escaped(out: Output) -> None:
    out.write({"index.html": "home"})
    dist = os.fsencode(out.checkout / "dist")
    with open(dist + b"/caf\xe9.html", "wb") as page:
        page.write(b"x")
    os.mkdir(dist + b"/\xff")
    with open(dist + b"/\xff/inside.html", "wb") as page:
        page.write(b"x")

    files = out.stage()

    assert sorted(files) == ["index.html"]
    why = "its name is not UTF-8 text, which URLs and storage keys need"
    assert sorted(out.notes) == [
        f"Skipped dist/\\xff/: {why}",
        f"Skipped dist/caf\\xe9.html: {why}",
    ]


# --- the output directory itself --------------------------------------------------------------


def test_the_checkout_itself_may_be_the_output(out: Output) -> None:
    (out.checkout / "index.html").write_text("home")
    (out.checkout / ".git").mkdir()
    (out.checkout / ".gitignore").write_text("node_modules")

    files = out.stage(".")

    assert sorted(files) == ["index.html"]
    assert sorted(out.notes) == [
        "Skipped .git/: dotfiles are not published (only .well-known/ is)",
        "Skipped .gitignore: dotfiles are not published (only .well-known/ is)",
    ]


def test_an_output_reached_through_a_symlink_inside_the_checkout(out: Output) -> None:
    (out.checkout / "build").mkdir()
    (out.checkout / "build" / "index.html").write_text("home")
    (out.checkout / "build" / ".env").write_text("x")
    (out.checkout / "public").symlink_to("build")

    assert out.stage("public") == {"index.html": b"home"}
    assert out.notes == ["Skipped build/.env: dotfiles are not published (only .well-known/ is)"]
    (out.checkout / "web").mkdir()
    assert out.stage("web/../build") == {"index.html": b"home"}


@pytest.mark.parametrize(
    ("make", "output", "message"),
    [
        (lambda o: None, "nope", "output directory nope/ was not found after the build"),
        (lambda o: o.write({"file": "x"}), "dist/file", "output directory dist/file/ was not"),
        (lambda o: None, "dist", "output directory dist/ is empty after the build"),
        (lambda o: o.write({".env": "x"}), "dist", "output directory dist/ is empty"),
        (lambda o: None, "..", "output directory ../ points outside the repository"),
        (
            lambda o: (o.checkout / "out").symlink_to(o.outside),
            "out",
            "output directory out/ points outside the repository",
        ),
        (
            lambda o: (o.checkout / "out").symlink_to("/etc"),
            "out",
            "output directory out/ points outside the repository",
        ),
    ],
)
def test_an_output_directory_that_cannot_be_staged(
    out: Output, make: Callable[[Output], object], output: str, message: str
) -> None:
    make(out)

    with pytest.raises(BuildError, match=message):
        out.stage(output)


def test_a_checkout_that_became_a_symlink_is_not_read(out: Output) -> None:
    out.write({"index.html": "home"})
    os.rename(out.checkout, out.tmp / "real")
    out.checkout.symlink_to(out.tmp / "real")

    with pytest.raises(NotADirectoryError):
        out.stage()


def test_the_staging_directory_and_its_files_are_the_builders_alone(out: Output) -> None:
    out.write({"index.html": "home", "a/b.js": "js"})
    old = os.umask(0)
    try:
        out.stage()
    finally:
        os.umask(old)

    area = out.tmp / "staging-1"
    assert stat.S_IMODE(area.stat().st_mode) == 0o700
    assert area.stat().st_uid == os.getuid()
    for staged in area.iterdir():
        assert stat.S_IMODE(staged.stat().st_mode) == 0o600
    with pytest.raises(FileExistsError):
        stage(out.checkout, "dist", area, BuildLimits(), out.notes.append)
