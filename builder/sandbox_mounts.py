"""What a build's sandbox is made of: the read-only system, our own files, the build's binds.

Nothing else of the host is mounted: no data directory, no home directory, no `/root`, no
`/run` or `/var` (no service sockets), no `/sys`, and of `/etc` a chosen few files. The
sandbox's `/etc/passwd`, `/etc/group` and `/etc/hosts` are ours, so the host's users and
names stay unknown, and the root filesystem is a tmpfs made read-only once built.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from builder import egress_relay
from builder.confine import ConfinementError
from builder.sandbox_host import HostUser, OwnUser

SANDBOX_UID = 1000
"""The build's uid (and gid) inside the sandbox."""
RUNTIME = "/run/scalemesh"
"""Where our own files (the relay, passwd, group, hosts) are, read-only, in the sandbox."""
RELAY = f"{RUNTIME}/relay.py"
TOOLS = f"{RUNTIME}/tools"
"""Where the builder's own generators (`builder.generators.tool_directories`) are, read-only."""
EGRESS = "/run/egress"
"""Where the egress proxy's socket directory is, read-only, in the sandbox."""
FALLBACK_PYTHON = Path("/usr/bin/python3")
"""The relay's interpreter when the builder's own is out of the sandbox uid's reach."""
SYSTEM_ROOTS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
"""Top-level system directories: a symlink into /usr (merged /usr) or a read-only bind."""
ETC = (
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "crypto-policies",
    "nsswitch.conf",
    "host.conf",
    "alternatives",
    "localtime",
    "timezone",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "mime.types",
    "os-release",
    "protocols",
    "services",
    "fonts",
)
"""Of /etc, what programs need to run, resolve certificates and find libraries; not secrets."""
SANDBOX_TMP = "/tmp"  # noqa: S108 - the sandbox's own tmpfs, not the host's /tmp
_RESERVED: tuple[str, ...] = ("/usr", "/etc", "/proc", "/dev", "/run", "/sys", SANDBOX_TMP)
_RESERVED += tuple(f"/{name}" for name in SYSTEM_ROOTS)
_OWN_FILES = {
    "passwd": (
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"build:x:{SANDBOX_UID}:{SANDBOX_UID}:build:/tmp:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    ),
    "group": f"root:x:0:\nbuild:x:{SANDBOX_UID}:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost\n::1 localhost\n",
}


def system_options(memory_bytes: int, host_root: Path = Path("/")) -> list[str]:
    """bwrap options for the read-only system, /proc, /dev and the private /tmp.

    `host_root`: where to look for merged-/usr symlinks (a test's fake root)."""
    options = ["--ro-bind", "/usr", "/usr"]
    for name in SYSTEM_ROOTS:
        host = host_root / name
        if host.is_symlink():
            options += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            options += ["--ro-bind", str(host), f"/{name}"]
    for name in ETC:
        options += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    # tmpfs pages are memory: without a cgroup to charge them to, the sizes are the bound.
    return [
        *options,
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(memory_bytes),
        "--tmpfs",
        SANDBOX_TMP,
        "--size",
        str(memory_bytes // 4),
        "--tmpfs",
        "/dev/shm",  # noqa: S108 - the sandbox's own tmpfs
    ]


def runtime_directory(tools: Iterable[str] = ()) -> Path:
    """A new directory of our own files for the sandbox (the caller removes it), with an empty
    `tools/<name>` for each of `tools` to mount a directory on."""
    directory = Path(tempfile.mkdtemp(prefix="scalemesh-sandbox-"))
    try:
        for name, text in _OWN_FILES.items():
            (directory / name).write_text(text)
        shutil.copyfile(egress_relay.__file__, directory / "relay.py")
        for entry in directory.iterdir():
            entry.chmod(0o644)
        for name in tools:
            (directory / "tools" / name).mkdir(parents=True)
            for made in (directory / "tools", directory / "tools" / name):
                made.chmod(0o755)  # whatever the umask: bwrap's uid must reach them
        # Searchable by the sandbox's host uid (bwrap resolves its sources as that uid); it
        # cannot list or change anything in it.
        directory.chmod(stat.S_IRWXU | stat.S_IXGRP | stat.S_IXOTH)
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return directory


def checked_binds(
    binds: Sequence[tuple[Path, str]], readonly: Sequence[Path]
) -> list[tuple[Path, str]]:
    """The build's writable (host directory, sandbox path) pairs, once they are safe to give.

    None may lie inside another or hold a read-only path: the build could replace what is
    inside its own directory with a symlink, which bwrap would follow on the host at the next
    command. Sandbox paths are absolute, clean, distinct and clear of the system's.
    """
    sources = [Path(os.path.abspath(source)) for source, _ in binds]
    for (source, dest), absolute in zip(binds, sources, strict=True):
        clean = str(PurePosixPath(os.path.normpath(dest)))
        if not dest.startswith("/") or clean != dest or dest == "/":
            raise ConfinementError(f"sandbox path {dest!r} must be absolute and clean")
        if any(dest == top or dest.startswith(f"{top}/") for top in _RESERVED):
            raise ConfinementError(f"sandbox path {dest} is the system's")
        for other in [*sources, *map(Path, map(os.path.abspath, readonly))]:
            if other != absolute and (
                other.is_relative_to(absolute) or absolute.is_relative_to(other)
            ):
                raise ConfinementError(f"{source} and {other} must not lie inside one another")
    if len({dest for _, dest in binds}) != len(binds) or len(set(sources)) != len(sources):
        raise ConfinementError("each directory is given to the build once, at a path of its own")
    return [(source, dest) for source, (_, dest) in zip(sources, binds, strict=True)]


def inside(path: Path, binds: Sequence[tuple[Path, str]]) -> str | None:
    """`path` as the sandbox sees it, when it lies in one of `binds`."""
    absolute = Path(os.path.abspath(path))
    for source, dest in binds:
        if absolute.is_relative_to(source):
            rest = absolute.relative_to(source)
            return dest if rest == Path() else f"{dest}/{rest}"
    return None


def relay_python(
    user: HostUser | OwnUser, executable: str = sys.executable, base: str = sys.base_prefix
) -> tuple[Path, Path | None]:
    """The interpreter for the relay, and the directory to mount for it (None: under /usr)."""
    real = Path(os.path.realpath(executable))
    home = Path(os.path.realpath(base))
    if real.is_relative_to("/usr"):
        return real, None
    if real.is_relative_to(home) and user.unreachable(real) is None:
        return real, home
    if FALLBACK_PYTHON.exists():
        return FALLBACK_PYTHON, None
    why = user.unreachable(real) or f"{real} is not in {home}"
    raise ConfinementError(f"no Python the sandbox can run for its relay ({why})")
