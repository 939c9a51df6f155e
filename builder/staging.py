"""Stage a build's output: a checked, capped copy, in a directory only the builder can write.

The output belongs to the build; the upload reads the staged copy instead. Every process of the
build is stopped before this runs, yet the tree they left may hold symlinks and hard links to the
platform's files, FIFOs, and secrets in dotfiles. So every read goes through directory file
descriptors with O_NOFOLLOW and no path is resolved twice: a symlink swapped in at any moment is
refused, never followed, and the file that was checked is the file that is copied. Symlinks are
resolved here, one component at a time, and only while they stay inside the output directory.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import BuildError
from builder.spec import RESERVED_DIR, BuildLimits
from builder.upload import missing_output

Note = Callable[[str], None]
"""Receives a short sentence for the build log."""
Real = tuple[str, ...]
"""A path below a tree's root as its components, none of them a symlink, `.` or `..`."""

MAX_HOPS = 40
"""Symlinks followed in one lookup before it counts as a loop (Linux's own limit)."""
MAX_DEPTH = 100
"""Directories nested deeper than this are refused: each level holds file descriptors open."""
WALK_FACTOR = 2
"""The walk looks at no more than this many entries per allowed file (directories, skipped
files and what symlinks lead to included), so links to directories cannot make it endless."""
WELL_KNOWN = ".well-known"
"""The one dot-directory published (RFC 8615), at the top of the output only."""
OUTSIDE = "it is a symlink to outside the output directory"
_RESERVED = RESERVED_DIR.rstrip("/")
_MB = 1 << 20
_CHUNK = 1 << 20
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in after the type check opens at once instead of waiting for a writer.
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class _Skip(Exception):
    """This entry is not published; the message says why."""


class _Outside(_Skip):
    """A symlink that leaves the tree."""

    def __init__(self) -> None:
        super().__init__(OUTSIDE)


class Tree:
    """A directory opened once, below which paths are looked up without following any symlink."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def open(self, real: Real, flags: int = _DIRECTORY) -> int:
        """A new descriptor for `real`: each directory on the way opened O_NOFOLLOW, the last
        with `flags`. Raises `OSError` (ELOOP for a symlink met on the way)."""
        fd = os.dup(self.fd)
        for index, name in enumerate(real):
            try:
                opened = os.open(name, flags if index == len(real) - 1 else _DIRECTORY, dir_fd=fd)
            finally:
                os.close(fd)
            fd = opened
        return fd

    def lstat(self, real: Real) -> os.stat_result:
        if not real:
            return os.fstat(self.fd)
        parent = self.open(real[:-1])
        try:
            return os.stat(real[-1], dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)

    def resolve(self, base: Real, target: str) -> Real:
        """Where the symlink text `target`, found in directory `base`, leads.

        Raises `_Outside` if it leaves the tree at any step (an absolute target, a `..` above the
        root, another symlink that does), `_Skip` if it loops or leads to nothing.
        """
        real = list(base)
        pending = _parts(target)
        hops = 0
        try:
            while pending:
                name = pending.pop()
                if name == ".." and not real:
                    raise _Outside
                if name in ("", "."):
                    continue
                if name == "..":
                    real.pop()
                    continue
                if not stat.S_ISLNK(self.lstat((*real, name)).st_mode):
                    real.append(name)
                    continue
                hops += 1
                if hops > MAX_HOPS:
                    raise _Skip("it is a symlink loop")
                pending.extend(_parts(self.readlink((*real, name))))
            self.lstat(tuple(real))
        except OSError as exc:
            raise _Skip(f"it is a broken symlink ({exc.strerror})") from None
        return tuple(real)

    def readlink(self, real: Real) -> str:
        parent = self.open(real[:-1])
        try:
            return os.readlink(real[-1], dir_fd=parent)
        finally:
            os.close(parent)


def _parts(target: str) -> list[str]:
    """A symlink's text as names to look up, the first last; an absolute one leaves the tree."""
    if target.startswith("/"):
        raise _Outside
    return target.split("/")[::-1]


def stage(
    checkout: Path, output: str, staging: Path, limits: BuildLimits, note: Note
) -> list[tuple[str, Path]]:
    """Copy the output directory `output` (relative to `checkout`) into `staging`, a directory
    this creates (mode 0700; its parent must be the builder's alone), and return what to
    publish: (path relative to the output, staged copy), sorted by path.

    Publishes symlinks that stay inside the output at their own path. Skips, with a `note` for
    each: symlinks that leave it, hard links to files outside it, FIFOs, sockets and devices,
    and dotfiles (but `.well-known/`). Raises `BuildError` when the output is missing, empty or
    outside the checkout, or passes a limit; it stops copying at once.
    """
    os.mkdir(staging, 0o700)
    os.chmod(staging, 0o700)  # mkdir's mode goes through the umask
    checkout_fd = os.open(checkout, _DIRECTORY)
    try:
        real = _output_root(Tree(checkout_fd), output)
        root_fd = Tree(checkout_fd).open(real)
    finally:
        os.close(checkout_fd)
    prefix = "".join(f"{name}/" for name in real)
    staging_fd = os.open(staging, _DIRECTORY)
    try:
        files = _Stager(Tree(root_fd), staging, staging_fd, limits, note, prefix).run()
    finally:
        os.close(staging_fd)
        os.close(root_fd)
    if not files:
        raise missing_output(prefix or "./", empty=True)
    return files


def _output_root(checkout: Tree, output: str) -> Real:
    label = f"{output.strip('/') or '.'}/"
    try:
        real = checkout.resolve((), output)
    except _Outside:
        raise BuildError(f"output directory {label} points outside the repository") from None
    except _Skip:
        raise missing_output(label, empty=False) from None
    if not stat.S_ISDIR(checkout.lstat(real).st_mode):
        raise missing_output(label, empty=False)
    return real


@dataclass(slots=True)
class _Frame:
    """A directory being read: its descriptor, where it is, and where its files are published."""

    fd: int
    real: Real
    published: str
    seen: frozenset[Real]
    """`real` and every directory above it on the way here, links included."""
    entries: os._ScandirIterator[str] = field(init=False)

    def __post_init__(self) -> None:
        self.entries = os.scandir(self.fd)

    def close(self) -> None:
        self.entries.close()
        os.close(self.fd)


@dataclass(slots=True)
class _Inode:
    links: int = 0
    """The highest link count seen: links may be added while the output is read."""
    paths: set[Real] = field(default_factory=set)


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Stager:
    def __init__(
        self,
        tree: Tree,
        staging: Path,
        staging_fd: int,
        limits: BuildLimits,
        note: Note,
        prefix: str,
    ) -> None:
        self.tree = tree
        self.staging = staging
        self.staging_fd = staging_fd
        self.limits = limits
        self.note = note
        self.prefix = prefix
        self.looked = 0
        self.total = 0
        self.staged: list[tuple[str, Path, tuple[int, int]]] = []
        self.inodes: dict[tuple[int, int], _Inode] = {}

    def run(self) -> list[tuple[str, Path]]:
        frames = [_Frame(os.dup(self.tree.fd), (), "", frozenset({()}))]
        try:
            while frames:
                entry = next(frames[-1].entries, None)
                if entry is None:
                    frames.pop().close()
                elif child := self._look(frames[-1], entry):
                    frames.append(child)
                    if len(frames) > MAX_DEPTH:
                        raise BuildError(
                            f"{self.prefix}{child.published} is nested more than "
                            f"{MAX_DEPTH} directories deep"
                        )
        finally:
            for frame in frames:
                frame.close()
        return self._published()

    def _look(self, frame: _Frame, entry: os.DirEntry[str]) -> _Frame | None:
        """Stage the file `entry` is, or return the directory it is, or note why it is skipped."""
        self._count(frame, entry)
        path = frame.published + entry.name
        shown = path
        try:
            found = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(found.st_mode):
                shown = f"{path}/"
            if not _utf8(entry.name):
                # Python hands such a name over with surrogates, which no URL, storage key or
                # JSON log line can carry: the log shows its bytes escaped.
                shown = shown.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                raise _Skip("its name is not UTF-8 text, which URLs and storage keys need")
            if entry.name.startswith(".") and (frame.real, entry.name) != ((), WELL_KNOWN):
                reserved = (frame.real, entry.name) == ((), _RESERVED)
                raise _Skip(
                    "Scale Mesh keeps its own files there"
                    if reserved
                    else f"dotfiles are not published (only {WELL_KNOWN}/ is)"
                )
            real: Real = (*frame.real, entry.name)
            linked = stat.S_ISLNK(found.st_mode)
            if linked:
                real = self._follow(frame, entry.name)
                found = self.tree.lstat(real)
            if stat.S_ISDIR(found.st_mode):
                return self._enter(frame, real, path, direct=not linked)
            if not stat.S_ISREG(found.st_mode):
                kind = next((name for check, name in _KINDS if check(found.st_mode)), "special")
                raise _Skip(f"it is {kind}, not a file")
            if linked:
                self._copy(self.tree.open(real, _FILE), path, real, found)
            else:
                self._copy(os.open(entry.name, _FILE, dir_fd=frame.fd), path, real, found)
        except _Skip as skip:
            self.note(f"Skipped {self.prefix}{shown}: {skip}")
        except OSError as exc:
            self.note(
                f"Skipped {self.prefix}{shown}: it changed while it was read ({exc.strerror})"
            )
        return None

    def _count(self, frame: _Frame, entry: os.DirEntry[str]) -> None:
        self.looked += 1
        if self.looked > WALK_FACTOR * self.limits.max_files:
            raise BuildError(
                f"{self.prefix}{frame.published}{entry.name} is one entry too many: the output "
                f"directory may hold at most {self.limits.max_files} files, and the walk "
                f"looks at {WALK_FACTOR} entries a file at most, directories and symlinks "
                "included (SCALEMESH_BUILD_MAX_FILES)"
            )

    def _follow(self, frame: _Frame, name: str) -> Real:
        real = self.tree.resolve(frame.real, os.readlink(name, dir_fd=frame.fd))
        if any(
            part.startswith(".") and (at, part) != (0, WELL_KNOWN) for at, part in enumerate(real)
        ):
            raise _Skip("it is a symlink to a dotfile")
        return real

    def _enter(self, frame: _Frame, real: Real, path: str, *, direct: bool) -> _Frame:
        if real in frame.seen:
            raise _Skip("it is a symlink to a directory that holds it")
        fd = os.open(real[-1], _DIRECTORY, dir_fd=frame.fd) if direct else self.tree.open(real)
        return _Frame(fd, real, f"{path}/", frame.seen | {real})

    def _copy(self, fd: int, path: str, real: Real, found: os.stat_result) -> None:
        """Copy the open file `fd`, which must still be the regular file `found` was."""
        try:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
                found.st_dev,
                found.st_ino,
            ):
                raise _Skip("it changed while it was read")
            name = f"{self.prefix}{path}"
            limits = self.limits
            if len(self.staged) >= limits.max_files:
                raise BuildError(
                    f"{name} is one file too many: the output directory may hold at most "
                    f"{limits.max_files} files (SCALEMESH_BUILD_MAX_FILES)"
                )
            self._check_size(name, opened.st_size, exact=True)
            staged = self.staging / str(len(self.staged))
            size = self._write(fd, name, staged)
        finally:
            os.close(fd)
        self.total += size
        key = (opened.st_dev, opened.st_ino)
        inode = self.inodes.setdefault(key, _Inode())
        inode.links = max(inode.links, opened.st_nlink)
        inode.paths.add(real)
        self.staged.append((path, staged, key))

    def _write(self, source: int, name: str, staged: Path) -> int:
        """Copy `source` to `staged`, checking the limits as it goes: the file may still grow."""
        size = 0
        target = os.open(staged.name, _CREATE, 0o600, dir_fd=self.staging_fd)
        with open(target, "wb") as sink:
            while chunk := os.read(source, _CHUNK):
                size += len(chunk)
                self._check_size(name, size, exact=False)
                sink.write(chunk)
        return size

    def _check_size(self, name: str, size: int, *, exact: bool) -> None:
        limits = self.limits
        shown = f"{size / _MB:.1f} MB" if exact else f"more than {limits.max_file_mb} MB"
        if size > limits.max_file_mb * _MB:
            raise BuildError(
                f"{name} is {shown}; one file may be at most {limits.max_file_mb} MB "
                "(SCALEMESH_BUILD_MAX_FILE_MB)"
            )
        if self.total + size > limits.max_output_mb * _MB:
            raise BuildError(
                f"{name} takes the output directory past {limits.max_output_mb} MB, the most "
                "all its files may hold together (SCALEMESH_BUILD_MAX_OUTPUT_MB)"
            )

    def _published(self) -> list[tuple[str, Path]]:
        """The staged files, but those with links outside the output: each path that reaches
        them must be seen as often as they have links (decided once every link was seen)."""
        files: list[tuple[str, Path]] = []
        for path, staged, key in self.staged:
            inode = self.inodes[key]
            if inode.links > len(inode.paths):
                self.note(
                    f"Skipped {self.prefix}{path}: it is a hard link to a file outside the "
                    "output directory"
                )
                staged.unlink()
            else:
                files.append((path, staged))
        return sorted(files)
