"""Real bubblewrap sandboxes for the sandbox and egress tests: directories, uids, commands.

A sandbox's host uid must reach the directories it is given, so they live in a directory of
their own (mode 0711), not in pytest's `tmp_path` (its parents are 0700). Each test gets a
host uid no process has: `stop_all` kills every process of that uid.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from builder.confine import Launch
from builder.egress import EgressProxy, Network, refusal
from builder.sandbox import Bubblewrap, find_bwrap
from builder.sandbox_cgroup import CGROUP_ROOT
from builder.sandbox_host import processes_of
from builder.spec import BuildLimits

REGISTRY = "registry.npmjs.org"
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "CI": "1", "PROJECT_VALUE": "from the spec"}
RUN_TIMEOUT = 120
"""A hang guard for one sandboxed command (npm install included), never a measure."""


@dataclass
class Build:
    """One build's host side: its directories, host uid, and what it logged."""

    root: Path
    uid: int
    lines: list[str] = field(default_factory=list)

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def env(self, **more: str) -> dict[str, str]:
        return {**ENV, "HOME": str(self.home), **more}

    def binds(self) -> list[tuple[Path, str]]:
        return [(self.repo, "/build/repo"), (self.home, "/build/home")]


@contextlib.contextmanager
def build_dirs() -> Iterator[Build]:
    """A build's directories (repo, home) in a fresh 0711 directory, and a free host uid."""
    root = Path(tempfile.mkdtemp(prefix="scalemesh-test-build-"))
    root.chmod(0o711)
    (root / "repo").mkdir()
    (root / "home").mkdir()
    try:
        yield Build(root, free_uid())
    finally:
        shutil.rmtree(root, ignore_errors=True)


def free_uid() -> int:
    """A host uid no process runs as (far above any real user's)."""
    while True:
        uid = 400_000 + secrets.randbelow(500_000)
        if not processes_of(uid):
            return uid


@contextlib.contextmanager
def sandbox(
    build: Build,
    limits: BuildLimits | None = None,
    *,
    network: bool = False,
    cgroup_root: Path = CGROUP_ROOT,
    readonly_paths: Sequence[Path] = (),
) -> Iterator[Bubblewrap]:
    """A `Bubblewrap` for `build`, with its egress proxy when `network`; closed afterwards."""
    with contextlib.ExitStack() as stack:
        egress = None
        if network:
            egress = stack.enter_context(
                EgressProxy(
                    on_block=build.lines.append,
                    client_uid=build.uid,
                    allowed_networks=gateway_networks(),
                )
            )
        confinement = Bubblewrap(
            limits or BuildLimits(),
            bwrap=find_bwrap(),
            binds=build.binds(),
            host_uid=build.uid,
            readonly_paths=readonly_paths,
            egress=egress,
            note=build.lines.append,
            cgroup_root=cgroup_root,
        )
        stack.callback(confinement.close)
        confinement.hand_over([build.repo, build.home])
        yield confinement


def run(launch: Launch, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run a launched command to its end, its output captured."""
    return subprocess.run(
        launch.argv,
        env=launch.env,
        cwd=launch.cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
        start_new_session=True,
        **launch.popen,
    )


def sh(confinement: Bubblewrap, build: Build, script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script in the sandbox, in the build's checkout."""
    return run(confinement.launch(["sh", "-c", script], cwd=build.repo, env=build.env()))


def gateway_networks() -> list[Network]:
    """Where the npm registry is reached, when that is not a public address.

    CI machines reach the package registries through a gateway at a documentation address
    (203.0.113.0/24), which the proxy refuses like any other non-public one unless allowed:
    as an operator would allow a registry mirror on a private address.
    """
    found = {info[4][0] for info in socket.getaddrinfo(REGISTRY, 443, type=socket.SOCK_STREAM)}
    addresses = [ipaddress.ip_address(text) for text in found]
    return [ipaddress.ip_network(address) for address in addresses if refusal(address)]


def own_address() -> str:
    """This machine's address on its main network interface (not loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((socket.gethostbyname(REGISTRY), 443))  # sends nothing
        address: str = probe.getsockname()[0]
    return address


@contextlib.contextmanager
def listener(host: str) -> Iterator[tuple[socket.socket, int]]:
    """A TCP listener on `host` (non-blocking accept: a test checks nobody connected)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock, sock.getsockname()[1]


def nobody_connected(sock: socket.socket) -> bool:
    try:
        accepted, _ = sock.accept()
    except BlockingIOError:
        return True
    accepted.close()
    return False


def in_sandbox_python(code: str) -> list[str]:
    """argv running `code` with the system's Python inside the sandbox."""
    return ["/usr/bin/python3", "-I", "-S", "-c", code]


def uid_processes(uid: int) -> set[int]:
    return processes_of(uid)
