"""Build cache archives: write chosen trees of a build's directories as one capped, streamed
`.tar.zst`, and extract one, as the hostile input it is, back into those directories.

An archive was written by an earlier build of arbitrary code, so extracting trusts nothing in
it: every member is a path below one of the named roots (`home`, `repo`), never absolute and
never with `..`; directories are descended through file descriptors with O_NOFOLLOW, so a
symlink (in the archive or in the fresh checkout) is never followed; symlinks are made only
when they point inside their root; hard links, devices, FIFOs and set-id bits are refused.
Reading a tree for an archive is as careful: the build's processes are stopped, symlinks are
stored, not followed, and only regular files owned by the build's user are read. Neither side
holds a whole archive in memory: tar streams through zstandard to and from a file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import zstandard

META = "scalemesh-cache.json"
"""The archive's first member: what it holds (its format and lockfile key)."""
FORMAT = 1
MAX_META = 64 * 1024
MAX_DEPTH = 64
EXPAND_FACTOR = 16
"""An archive may unpack to at most this many times its cap: a zstd bomb stops there."""
LEVEL = 3
"""zstd's default level: ~4x on node_modules at hundreds of MB/s; higher levels cost more time
than the transfer saves."""
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


class ArchiveTooLarge(Exception):
    """The archive grew past its cap while being written."""


class ArchiveError(Exception):
    """The archive cannot be read: corrupt, truncated, not ours, or unpacking past its bound."""


@dataclass(slots=True)
class Extracted:
    """What an extraction did."""

    meta: dict[str, Any] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    """Members left out on purpose (node_modules of another lockfile, paths that exist)."""
    refused: list[str] = field(default_factory=list)
    """Hostile members, each with why."""
    stopped: str | None = None
    """The member extraction stopped at (`until`), None when it read the whole archive."""


class _Capped:
    """A binary file that refuses to grow past `cap` bytes."""

    def __init__(self, stream: IO[bytes], cap: int) -> None:
        self._stream = stream
        self._cap = cap
        self.written = 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        if self.written > self._cap:
            raise ArchiveTooLarge(f"past {self._cap} bytes")
        return self._stream.write(data)


# --- writing ------------------------------------------------------------------------------


def write_archive(
    target: Path,
    meta: Mapping[str, Any],
    trees: Mapping[str, Mapping[str, Path]],
    *,
    cap: int,
    owner: int,
    carry: Path | None = None,
    carry_roots: Collection[str] = (),
) -> int:
    """Write `trees` to `target`; return the archive's size in bytes.

    `trees`: for each root name, the root directory and the trees below it to store (root
    name -> {relative path: root}), in that order. Files not owned by uid `owner` are left out.
    `carry`: an earlier archive whose members below `carry_roots` are copied over, as they
    are, where the trees did not store that name (what a build did not extract, it keeps).
    Raises `ArchiveTooLarge` past `cap` bytes (the partial file is left for the caller to
    delete), `ArchiveError` when `carry` cannot be read.
    """
    with target.open("wb") as raw:
        capped = _Capped(raw, cap)
        compressor = zstandard.ZstdCompressor(level=LEVEL)
        packed = compressor.stream_writer(capped, closefd=False)  # type: ignore[arg-type] # a duck-typed file
        with packed, tarfile.open(fileobj=packed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            text = json.dumps(dict(meta), sort_keys=True).encode()
            info = tarfile.TarInfo(META)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
            for name, paths in trees.items():
                for relative, root in paths.items():
                    _add_tree(tar, name, root, relative, owner)
            if carry is not None:
                _carry(tar, carry, frozenset(carry_roots), cap * EXPAND_FACTOR)
        return capped.written


def _carry(tar: tarfile.TarFile, source: Path, roots: frozenset[str], bound: int) -> None:
    """Copy `source`'s members below `roots` into `tar`, but for names it already holds; each
    one checked as extracting checks it, and written afresh (no owner, no set-id bits). Past
    `bound` bytes carried (a zstd bomb compresses below any cap), `ArchiveTooLarge`."""
    stored = set(tar.getnames())
    carried = 0
    with _reading(source) as (old, _, members):
        for member in members:
            name = member.name
            if name in stored or _hostile(member, name.split("/"), roots) is not None:
                continue
            info = tarfile.TarInfo(name)
            info.type, info.mtime = member.type, member.mtime
            info.mode = stat.S_IMODE(member.mode) & 0o755
            if member.issym():
                info.linkname = member.linkname
            if member.isreg():
                carried += member.size
                if carried > bound:
                    raise ArchiveTooLarge(f"carrying past {bound} bytes")
                info.size = member.size
                tar.addfile(info, old.extractfile(member))
            else:
                tar.addfile(info)


def _add_tree(tar: tarfile.TarFile, name: str, root: Path, relative: str, owner: int) -> None:
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    root_fd = os.open(root, _DIRECTORY)  # the build's own directory: it is there
    try:
        fd = _descend(root_fd, parts)
    except OSError:
        return  # a component that is a symlink (or missing) ends it: the tree is not stored
    finally:
        os.close(root_fd)
    prefix = "/".join([name, *parts])
    try:
        _add_directory(tar, fd, prefix, owner, prefix_len=len(name) + 1, depth=0)
    finally:
        os.close(fd)


def _add_directory(
    tar: tarfile.TarFile, fd: int, member: str, owner: int, *, prefix_len: int, depth: int
) -> None:
    info = tarfile.TarInfo(member)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)
    if depth >= MAX_DEPTH:
        return
    for entry in sorted(os.scandir(fd), key=lambda entry: entry.name):
        name = f"{member}/{entry.name}"
        found = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(found.st_mode):
            link = os.readlink(entry.name, dir_fd=fd)
            if _link_inside(name[prefix_len:], link):
                info = tarfile.TarInfo(name)
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, link, 0o777
                tar.addfile(info)
        elif stat.S_ISDIR(found.st_mode) and found.st_uid == owner:
            try:
                child = os.open(entry.name, _DIRECTORY, dir_fd=fd)
            except OSError:  # pragma: no cover - swapped for a symlink after scandir (a race)
                continue
            try:
                _add_directory(tar, child, name, owner, prefix_len=prefix_len, depth=depth + 1)
            finally:
                os.close(child)
        elif stat.S_ISREG(found.st_mode) and found.st_uid == owner:
            _add_file(tar, fd, entry.name, name, owner)


def _add_file(tar: tarfile.TarFile, fd: int, entry: str, member: str, owner: int) -> None:
    try:
        handle = os.open(entry, _FILE, dir_fd=fd)
    except OSError:  # pragma: no cover - swapped after scandir, or unreadable to a non-root builder
        return
    with os.fdopen(handle, "rb") as stream:
        opened = os.fstat(stream.fileno())
        # The file checked is the file read: a swap after scandir is caught here.
        if not stat.S_ISREG(opened.st_mode) or opened.st_uid != owner:  # pragma: no cover - a race
            return
        info = tarfile.TarInfo(member)
        info.size, info.mode = opened.st_size, stat.S_IMODE(opened.st_mode) & 0o755
        info.mtime = int(opened.st_mtime)
        tar.addfile(info, stream)


def _link_inside(path: str, link: str) -> bool:
    """Whether a symlink at `path` (relative to its root) to `link` stays below that root."""
    if not link or link.startswith("/") or "\0" in link:
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), link))
    return resolved != ".." and not resolved.startswith("../")


# --- extracting ---------------------------------------------------------------------------


def extract_archive(
    source: Path,
    roots: Mapping[str, Path],
    choose: Callable[[Mapping[str, Any]], Callable[[str], bool]],
    *,
    max_bytes: int,
    until: Callable[[str], bool] | None = None,
) -> Extracted:
    """Extract `source` below `roots` (root name -> directory); return what it did.

    `choose` gets the archive's meta and answers which members (by name) to extract. Hostile
    members are refused one by one (`Extracted.refused`); a corrupt or overlong archive raises
    `ArchiveError`, leaving what was extracted before it. `until`: extraction ends, unread, at
    the first member it answers True for (`Extracted.stopped`).
    """
    done = Extracted()
    fds = {name: os.open(root, _DIRECTORY) for name, root in roots.items()}
    try:
        with _reading(source) as (tar, meta, members):
            done.meta = meta
            wanted = choose(meta)
            made: set[str] = set()
            for member in members:
                if until is not None and until(member.name):
                    done.stopped = member.name
                    break
                _extract(tar, member, fds, wanted, done, max_bytes, made)
    except OSError as exc:
        raise ArchiveError(str(exc) or type(exc).__name__) from None
    finally:
        for fd in fds.values():
            os.close(fd)
    return done


@contextlib.contextmanager
def _reading(
    source: Path,
) -> Iterator[tuple[tarfile.TarFile, dict[str, Any], Iterator[tarfile.TarInfo]]]:
    """`source` as a tar stream: the tar, its meta, and the members after the meta, read as
    they are iterated; a corrupt, truncated or foreign archive raises `ArchiveError`."""
    try:
        with source.open("rb") as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(raw)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                members = iter(tar)
                yield tar, _meta(tar, members), members
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as exc:
        raise ArchiveError(str(exc) or type(exc).__name__) from None


def _meta(tar: tarfile.TarFile, members: Iterator[tarfile.TarInfo]) -> dict[str, Any]:
    first = next(members, None)
    if first is None or first.name != META or not first.isreg() or first.size > MAX_META:
        raise ArchiveError(f"it does not start with {META}")
    stream = tar.extractfile(first)
    assert stream is not None  # noqa: S101 - a regular member always has a stream
    try:
        meta = json.loads(stream.read())
    except ValueError:
        raise ArchiveError(f"its {META} is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArchiveError(f"its {META} is not of format {FORMAT}")
    return meta


def _extract(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    fds: Mapping[str, int],
    wanted: Callable[[str], bool],
    done: Extracted,
    max_bytes: int,
    made: set[str],
) -> None:
    """`made`: the directories this extraction has made (or found) already, by member name."""
    name = member.name
    parts = name.split("/")
    why = _hostile(member, parts, fds)
    if why is not None:
        done.refused.append(f"{name!r}: {why}")
        return
    if not wanted(name):
        done.skipped += 1
        return
    try:
        parent = _descend(fds[parts[0]], parts[1:-1], made, parts[0])
    except OSError:
        done.refused.append(f"{name!r}: a directory on its path is a symlink or not a directory")
        return
    try:
        if member.isdir():
            if name not in made:
                _make_directory(parent, parts[-1])
                made.add(name)
        elif member.issym():
            try:
                os.symlink(member.linkname, parts[-1], dir_fd=parent)
            except FileExistsError:
                done.skipped += 1
        else:
            done.bytes += member.size
            if done.bytes > max_bytes:
                raise ArchiveError(f"it unpacks to more than {max_bytes} bytes")
            _write_file(tar, member, parent, parts[-1], done)
    finally:
        os.close(parent)


def _hostile(member: tarfile.TarInfo, parts: list[str], roots: Collection[str]) -> str | None:
    """Why a member must not be extracted (below one of `roots`), or None."""
    if member.name.startswith("/") or "\0" in member.name:
        return "an absolute path"
    if any(part in ("", ".", "..") for part in parts) or len(parts) > MAX_DEPTH + 8:
        return "a path with '..', '.' or empty parts"
    if parts[0] not in roots or len(parts) < 2:
        return f"outside {', '.join(sorted(roots))}"
    if member.islnk():
        return "a hard link"
    if member.issym():
        return (
            None
            if _link_inside("/".join(parts[1:]), member.linkname)
            else "a symlink leaving its root"
        )
    if not (member.isdir() or member.isreg()):
        return "a device, FIFO or other special file"
    return None


def _descend(fd: int, parts: list[str], made: set[str] | None = None, at: str = "") -> int:
    """A new descriptor of the directory `parts` below `fd`, never via symlinks. With `made`
    (extracting), made as needed, `made` holding the directories known to be there already,
    by their path from `at` (the name of `fd`); without (writing), it must be there."""
    current = os.dup(fd)
    try:
        for part in parts:
            at = f"{at}/{part}"
            if made is not None and at not in made:
                _make_directory(current, part)
                made.add(at)
            child = os.open(part, _DIRECTORY, dir_fd=current)
            os.close(current)
            current = child
    except BaseException:
        os.close(current)
        raise
    return current


def _make_directory(fd: int, name: str) -> None:
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=fd)


def _write_file(
    tar: tarfile.TarFile, member: tarfile.TarInfo, parent: int, name: str, done: Extracted
) -> None:
    try:
        # O_EXCL: what the checkout already has (a committed file) wins over the cache.
        handle = os.open(name, _CREATE, stat.S_IMODE(member.mode) & 0o755, dir_fd=parent)
    except FileExistsError:
        done.skipped += 1
        return
    stream = tar.extractfile(member)
    assert stream is not None  # noqa: S101 - a regular member always has a stream
    with os.fdopen(handle, "wb") as out:
        while chunk := stream.read(_CHUNK):
            out.write(chunk)
    os.utime(name, (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)
    done.files += 1
