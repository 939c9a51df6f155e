"""Memory and process limits for one build by cgroup, when this machine lets us make one.

- cgroup v2 (`/sys/fs/cgroup` is the unified hierarchy): a group next to the builder's own,
  in the subtree delegated to it (or under the root of its cgroup namespace), with the
  `memory` and `pids` controllers enabled for it;
- cgroup v1: a group in each of the `memory` and `pids` hierarchies, under `scalemesh/`
  (root can write them; a user cannot, unless given them).

Each command's bwrap process moves itself in before it starts (`join`, from `preexec_fn`), so
every process of the build is born inside, and a sandboxed process cannot leave: it sees no
cgroup filesystem, and its cgroup namespace shows its own group as the root.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from builder.spec import BuildLimits

CGROUP_ROOT = Path("/sys/fs/cgroup")
OWN = Path("/proc/self/cgroup")
GROUP = "scalemesh"
_NEEDED = ("memory", "pids")


class NoCgroup(Exception):
    """No cgroup can be made here; the message says why (for the build log)."""


class Cgroup:
    """The group(s) one build's processes run in: one per v1 hierarchy, or one v2 group."""

    def __init__(self, directories: Sequence[Path], version: int) -> None:
        self.directories = list(directories)
        self.version = version

    def join(self) -> None:
        """Move the calling process in (run in the child, before it drops its privileges)."""
        for directory in self.directories:
            fd = os.open(directory / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, b"0")  # 0: the writer itself
            finally:
                os.close(fd)

    def members(self) -> set[int]:
        """The processes in the group now (a dead one may still be listed until it is reaped)."""
        found: set[int] = set()
        for directory in self.directories:
            with contextlib.suppress(FileNotFoundError):
                found |= {int(pid) for pid in (directory / "cgroup.procs").read_text().split()}
        return found

    def remove(self) -> str | None:
        """Remove the groups; why not, when a process is still in one."""
        for directory in self.directories:
            try:
                directory.rmdir()
            except FileNotFoundError:
                continue
            except OSError as exc:
                return f"cannot remove cgroup {directory}: {exc.strerror or exc}"
        return None


def make_cgroup(
    name: str, limits: BuildLimits, *, root: Path = CGROUP_ROOT, own: Path = OWN
) -> Cgroup:
    """A new group for build `name` with its memory and process limits set.

    `own`: where this process's cgroups are listed. Raises `NoCgroup` when neither version
    can be used.
    """
    memory, processes = str(limits.memory_mb << 20), str(limits.processes)
    if (root / "cgroup.controllers").exists():
        return _v2(root, name, memory, processes, own)
    return _v1(root, name, memory, processes)


def _v1(root: Path, name: str, memory: str, processes: str) -> Cgroup:
    made: list[Path] = []
    settings = {
        "memory": [("memory.limit_in_bytes", memory), ("memory.memsw.limit_in_bytes", memory)],
        "pids": [("pids.max", processes)],
    }
    for controller in _NEEDED:
        if not (root / controller / "cgroup.procs").exists():
            raise NoCgroup(f"no cgroup v1 {controller} hierarchy at {root / controller}")
    try:
        for controller in _NEEDED:
            directory = root / controller / GROUP / name
            directory.mkdir(parents=True)
            made.append(directory)
            for file, value in settings[controller]:
                _set(directory / file, value)
    except OSError as exc:
        Cgroup(made, 1).remove()
        raise NoCgroup(f"cannot make a cgroup v1 group: {exc.strerror or exc}") from None
    return Cgroup(made, 1)


def _v2(root: Path, name: str, memory: str, processes: str, listed: Path) -> Cgroup:
    own = _own_v2_path(listed)
    # The builder's own group holds processes, so it may not have children with controllers
    # (v2's "no internal processes" rule): the new group goes next to it, except at the root.
    base = root if own == "/" else (root / own.lstrip("/")).parent
    directory = base / f"{GROUP}-{name}"
    made: list[Path] = []
    try:
        offered = (base / "cgroup.controllers").read_text().split()
        if not set(_NEEDED) <= set(offered):
            raise NoCgroup(f"cgroup v2 at {base} does not offer the memory and pids controllers")
        enabled = (base / "cgroup.subtree_control").read_text().split()
        missing = [f"+{controller}" for controller in _NEEDED if controller not in enabled]
        if missing:
            _set(base / "cgroup.subtree_control", " ".join(missing))
        directory.mkdir()
        made.append(directory)
        _set(directory / "memory.max", memory)
        _set(directory / "memory.swap.max", "0")
        _set(directory / "pids.max", processes)
    except OSError as exc:
        Cgroup(made, 2).remove()
        raise NoCgroup(f"cannot make a cgroup v2 group in {base}: {exc.strerror or exc}") from None
    return Cgroup([directory], 2)


def _own_v2_path(listed: Path) -> str:
    for line in listed.read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise NoCgroup("this process is in no cgroup v2 group")


def _set(path: Path, value: str) -> None:
    """Write one control file; a file this kernel does not have (swap accounting) is skipped."""
    if path.name in ("memory.memsw.limit_in_bytes", "memory.swap.max") and not path.exists():
        return
    path.write_text(value)
