"""How the project's own commands are confined: the `Confinement` interface, and the two that
need no sandbox tool (the builder image's unprivileged user, and none at all).

The builder itself (clone, detect, upload) runs outside the confinement; only install and build
run inside it. `builder.sandbox.Bubblewrap` is the confinement of the local runner.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from builder.spec import BuildLimits

BUILD_ROOT = "/build"
"""Where a sandbox shows the build's own directories (`/build/repo`, `/build/home`)."""
KILL_ROUNDS = 50
"""`stop_all` kills and looks again this many times (20 ms apart) before it gives up."""


class ConfinementError(RuntimeError):
    """The confinement cannot be set up, or could not stop every process of the build."""


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one command inside the confinement."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    popen: dict[str, Any] = field(default_factory=dict)
    """Extra `subprocess.Popen` keyword arguments (user, group, preexec_fn, pass_fds)."""


class Confinement(Protocol):
    description: str
    """One line for the build log: what the commands run in, and how each limit is enforced."""

    def hand_over(self, directories: Sequence[Path]) -> None:
        """Make `directories` (and what is in them) writable by the build, nothing else."""

    def launch(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> Launch:
        """How to run `argv` confined, in `cwd`, with exactly `env` as its environment."""

    def stop_all(self) -> None:
        """Kill every process the build started, wherever it moved (new sessions included).

        Called before the output is read: nothing of the build may run while it is uploaded.
        Raises `ConfinementError` when a process survives.
        """

    def close(self) -> None:
        """Release what the confinement holds (sockets, cgroups)."""


Binds = Sequence[tuple[Path, str]]
"""The build's writable directories: (host path, path inside a sandbox) pairs."""
Confine = Callable[[Binds, Callable[[str], None]], "Confinement"]
"""Makes a build's confinement once its directories exist, given them and where notes for the
build log go. Raises `ConfinementError` when it cannot."""


def given(confinement: Confinement) -> Confine:
    """A `Confine` for a confinement that needs to know nothing of the build's directories."""
    return lambda binds, note: confinement


def rlimits(limits: BuildLimits, *, memory: bool, processes: bool) -> list[tuple[int, int]]:
    """The resource limits a confined command starts under.

    `memory`/`processes`: whether to use rlimits for those (no cgroup can do it)."""
    chosen = [
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, limits.max_file_mb << 20),
        (resource.RLIMIT_CORE, 0),
    ]
    if memory:
        chosen.append((resource.RLIMIT_AS, limits.memory_mb << 20))
    if processes:
        chosen.append((resource.RLIMIT_NPROC, limits.processes))
    return chosen


def apply_rlimits(chosen: Sequence[tuple[int, int]]) -> Callable[[], None]:
    """A `preexec_fn` that sets `chosen` (soft and hard) in the child before it runs."""
    pairs = list(chosen)

    def apply() -> None:
        for kind, value in pairs:
            resource.setrlimit(kind, (value, value))

    return apply


class RunAs:
    """The builder image: the builder runs as root, the commands as an unprivileged uid:gid.

    Every process of that uid is the build's, so `stop_all` kills them all with one
    `kill(-1, SIGKILL)` sent as that uid, which reaches every process the uid may signal.
    """

    def __init__(self, uid: int, gid: int, limits: BuildLimits) -> None:
        self.uid, self.gid = uid, gid
        self._limits = rlimits(limits, memory=True, processes=True)
        self.description = (
            f"unprivileged user {uid}:{gid}; CPU time, memory, processes and file size "
            "limited by rlimits"
        )

    def hand_over(self, directories: Sequence[Path]) -> None:
        for top in directories:
            os.chown(top, self.uid, self.gid)
            for root, names, files in os.walk(top):
                for name in (*names, *files):
                    os.chown(os.path.join(root, name), self.uid, self.gid, follow_symlinks=False)

    def launch(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> Launch:
        return Launch(
            list(argv),
            dict(env),
            cwd,
            {
                "user": self.uid,
                "group": self.gid,
                "extra_groups": [],
                "preexec_fn": apply_rlimits(self._limits),
            },
        )

    def stop_all(self) -> None:
        for _ in range(KILL_ROUNDS):
            if not _processes_of(self.uid):
                return
            _kill_everything_as(self.uid, self.gid)
            time.sleep(0.02)
        raise ConfinementError(f"processes of user {self.uid} survived SIGKILL")

    def close(self) -> None:
        return None


class Unconfined:
    """`SCALEMESH_UNSAFE_LOCAL_BUILDS=1` with no sandbox: the commands run as this user.

    Only what stays in the commands' own process groups can be stopped."""

    description = "NO SANDBOX (SCALEMESH_UNSAFE_LOCAL_BUILDS=1): the build runs as this user"

    def __init__(self, limits: BuildLimits) -> None:
        # Not RLIMIT_NPROC: it would count every process of this user, the API's included.
        self._limits = rlimits(limits, memory=True, processes=False)

    def hand_over(self, directories: Sequence[Path]) -> None:
        return None

    def launch(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> Launch:
        return Launch(list(argv), dict(env), cwd, {"preexec_fn": apply_rlimits(self._limits)})

    def stop_all(self) -> None:
        return None

    def close(self) -> None:
        return None


def _processes_of(uid: int) -> list[int]:
    """The live processes of `uid` (a zombie is dead already: only its parent can reap it)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
            if state not in (b"Z", b"X"):
                found.append(int(entry))
    return found


def _kill_everything_as(uid: int, gid: int) -> None:
    """Fork, become `uid`, and send SIGKILL to every process that uid may signal."""
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child; its effect is what tests see
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
