"""Who a sandbox runs as on the host, and how every process of a build is found and killed.

As root, the builder gives each build a host uid of its own (`HostUser`): the build's
processes are then exactly that uid's, and a process that got out of its user namespace would
still be an unprivileged user. A builder that is not root runs its sandboxes as itself
(`OwnUser`); the user namespace still maps it to an unprivileged uid inside, and its processes
are found through each sandbox's PID namespace (`Sandboxes`) and its cgroup.

Every kill goes through a pidfd opened before the process is checked, so a pid that is reused
in between is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from builder.confine import ConfinementError


class HostUser:
    """The host uid (and gid, the same number) of one build, given by a builder that is root."""

    shared = False

    def __init__(self, uid: int) -> None:
        if uid <= 0:
            raise ConfinementError(f"a sandbox's host uid must be above 0, not {uid}")
        self.uid = self.gid = uid

    def drop(self) -> None:  # pragma: no cover - runs in the forked child (Bubblewrap._preexec)
        """Become this uid (in the child, just before bwrap runs), with no other group.

        Its effect is tested: the sandbox's files on the host are this uid's."""
        os.setgroups([])
        os.setresgid(self.gid, self.gid, self.gid)
        os.setresuid(self.uid, self.uid, self.uid)

    def hand_over(self, top: Path) -> None:
        """Give `top` and what is in it to this uid (nothing of the build may run meanwhile)."""
        os.chown(top, self.uid, self.gid, follow_symlinks=False)
        for root, directories, files in os.walk(top):
            for name in (*directories, *files):
                os.chown(os.path.join(root, name), self.uid, self.gid, follow_symlinks=False)

    def processes(self) -> set[int]:
        return processes_of(self.uid)

    def unreachable(self, path: Path) -> str | None:
        """Why this uid could not reach `path` (bwrap resolves its sources as this uid)."""
        current = Path("/")
        for part in path.parts[1:]:
            info = os.stat(current)
            if not _searchable(info, self.uid, self.gid):
                mode = stat.S_IMODE(info.st_mode)
                return (
                    f"uid {self.uid} cannot reach {path}: {current} is mode {mode:04o}"
                    f" (let others search it: chmod o+x {current}; or run Scale Mesh as a"
                    " user that is not root)"
                )
            current = current / part
        return None


class OwnUser:
    """A builder that is not root: its sandboxes run as its own uid."""

    shared = True

    def __init__(self) -> None:
        self.uid, self.gid = os.geteuid(), os.getegid()

    def drop(self) -> None:
        return None

    def hand_over(self, top: Path) -> None:
        return None

    def processes(self) -> set[int]:
        return set()  # its uid's processes are the builder's too: only namespaces tell them

    def unreachable(self, path: Path) -> str | None:
        return None  # the builder runs as this uid and reached it


def host_user(host_uid: int | None, euid: int | None = None) -> HostUser | OwnUser:
    """The user for `host_uid`; root must name one (root mapped into a sandbox owns too much).

    `euid`: the builder's effective uid, this process's unless given."""
    euid = os.geteuid() if euid is None else euid
    if host_uid is not None:
        if euid != 0:
            raise ConfinementError("only root can run a sandbox as another host uid")
        return HostUser(host_uid)
    if euid == 0:
        raise ConfinementError("a builder running as root must give each build a host uid")
    return OwnUser()


def _searchable(info: os.stat_result, uid: int, gid: int) -> bool:
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


class Sandboxes:
    """The sandboxes started so far, each known by what its bwrap wrote to `--info-fd`."""

    def __init__(self) -> None:
        self._pipes: list[tuple[int, int]] = []

    def info_fd(self) -> int:
        """A new pipe's write end for the next bwrap (`--info-fd`, and `pass_fds`)."""
        read, write = os.pipe()
        self._pipes.append((read, write))
        return write

    def kill(self, within: float) -> int:
        """SIGKILL each sandbox's PID 1, which takes every process of its namespace with it.

        Waits up to `within` s for them to be gone; returns how many were still running.
        """
        pidfds = [fd for fd in map(_kill_init, self._drain()) if fd is not None]
        deadline = time.monotonic() + within
        waiting = pidfds
        while waiting and (left := deadline - time.monotonic()) > 0:
            ended, _, _ = select.select(waiting, [], [], left)
            waiting = [fd for fd in waiting if fd not in ended]
        for fd in pidfds:
            os.close(fd)
        return len(pidfds)

    def close(self) -> None:
        self._drain()

    def _drain(self) -> list[str]:
        infos = []
        for read, write in self._pipes:
            os.close(write)
            os.set_blocking(read, False)
            chunks = []
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(read, 4096):
                    chunks.append(chunk)
            os.close(read)
            infos.append(b"".join(chunks).decode(errors="replace"))
        self._pipes = []
        return infos


_CHILD = re.compile(r'"child-pid"\s*:\s*(\d+)')
_PID_NS = re.compile(r'"pid-namespace"\s*:\s*(\d+)')


def _kill_init(info: str) -> int | None:
    """Kill the PID 1 `info` names, if it still is that namespace's; its pidfd, to wait on."""
    # Patterns, not a JSON parser: what a bwrap still starting wrote so far may be cut short.
    child, namespace = _CHILD.search(info), _PID_NS.search(info)
    if child is None or namespace is None:
        return None  # never started, or still starting: its process group and parent's death
    pid = int(child.group(1))
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if pid_namespace(pid) == f"pid:[{namespace.group(1)}]" and sigkill(pidfd):
        return pidfd
    os.close(pidfd)
    return None


def pid_namespace(pid: int) -> str:
    """`pid:[N]` for the PID namespace `pid` is in; "" once it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return ""


def sigkill(pidfd: int) -> bool:
    """SIGKILL the process of `pidfd`; False when it had already ended."""
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def processes_of(uid: int) -> set[int]:
    """Live processes with `uid` as their real, effective, saved or filesystem uid.

    Read from /proc/N/status: a process that makes itself non-dumpable turns its /proc/N
    directory root's, but not the uids listed inside.
    """
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (status := _status(int(entry))) is not None:
            uids, state = status
            if uid in uids and state != "Z":
                found.add(int(entry))
    return found


def alive(pids: Iterable[int]) -> set[int]:
    """Those of `pids` that still run (a zombie, dead but not reaped, does not)."""
    return {pid for pid in pids if (status := _status(pid)) is not None and status[1] != "Z"}


def kill_checked(pid: int, ours: Callable[[int], bool]) -> None:
    """SIGKILL `pid` if, once pinned by a pidfd, `ours(pid)` still holds."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if ours(pid):
            sigkill(pidfd)
    finally:
        os.close(pidfd)


def _status(pid: int) -> tuple[set[int], str] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {int(uid) for uid in fields["Uid"].split()}, fields["State"].split()[0]
