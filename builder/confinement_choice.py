"""Which confinement the project's commands run in, from what the builder was started with."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from builder.confine import (
    Binds,
    Confine,
    Confinement,
    ConfinementError,
    Launch,
    RunAs,
    Unconfined,
    given,
)
from builder.egress import EgressProxy
from builder.sandbox import Bubblewrap
from builder.sandbox_host import processes_of
from builder.spec import BuildLimits, SpecError

SANDBOX = "SCALEMESH_BUILDER_SANDBOX"
"""JSON the local runner sets: `{"kind": "bubblewrap", ...}` or `{"kind": "none"}` (unsafe)."""
BUILD_UIDS = 1_000_000
"""As root, each build's sandbox runs as host uid `BUILD_UIDS + the builder's pid`: one of its
own, unique while the builder lives, so its processes are its alone to count and kill."""


def confinement_for(
    run_as: tuple[int, int] | None,
    sandbox: str,
    limits: BuildLimits,
    *,
    toolchains: Path | None = None,
) -> Confine:
    """`run_as` (the builder image's uid:gid) wins; else the sandbox the local runner chose.

    With neither, refuse: a build never runs unconfined unless someone asked for it.
    `toolchains`: the toolchain cache, which a sandbox shows read-only."""
    if run_as is not None:
        return given(RunAs(*run_as, limits))
    if not sandbox:
        raise SpecError(f"no confinement for the build's commands (set {SANDBOX} or run as root)")
    try:
        config = json.loads(sandbox)
    except json.JSONDecodeError:
        raise SpecError(f"{SANDBOX} is not JSON") from None
    kind = config.get("kind") if isinstance(config, dict) else None
    if kind == "none":
        return given(Unconfined(limits))
    if kind == "bubblewrap":
        return _bubblewrap(config, limits, toolchains)
    raise SpecError(f"{SANDBOX} names no known sandbox ({kind!r})")


def build_uid(pid: int | None = None) -> int | None:
    """The host uid this builder's sandboxes run as: None when it is not root (its own)."""
    if os.geteuid() != 0:
        return None
    return BUILD_UIDS + (os.getpid() if pid is None else pid)


def _bubblewrap(config: Mapping[str, Any], limits: BuildLimits, toolchains: Path | None) -> Confine:
    try:
        bwrap = Path(config["bwrap"])
        readonly = [Path(path) for path in config.get("readonly_paths", [])]
        readonly += [toolchains] if toolchains is not None else []
        networks = [ipaddress.ip_network(net) for net in config.get("allow_networks", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(f"{SANDBOX} has a bad bubblewrap setting: {exc}") from None
    host_uid = build_uid()

    def confine(binds: Binds, note: Callable[[str], None]) -> Confinement:
        if host_uid is not None and processes_of(host_uid):
            # A pid is reused only once its builder has gone, and that builder's stop_all
            # killed everything of this uid: anything here is not ours to share with.
            raise ConfinementError(f"host uid {host_uid} still has processes running")
        egress = EgressProxy(on_block=note, allowed_networks=networks, client_uid=host_uid)
        try:
            sandbox = Bubblewrap(
                limits,
                bwrap=bwrap,
                binds=binds,
                host_uid=host_uid,
                readonly_paths=readonly,
                egress=egress,
                note=note,
            )
        except BaseException:
            egress.close()
            raise
        return _WithEgress(sandbox, egress)

    return confine


class _WithEgress:
    """A sandbox and the egress proxy it owns: closing one closes both."""

    def __init__(self, sandbox: Bubblewrap, egress: EgressProxy) -> None:
        self._sandbox, self._egress = sandbox, egress
        self.description = sandbox.description

    def hand_over(self, directories: Sequence[Path]) -> None:
        self._sandbox.hand_over(directories)

    def launch(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> Launch:
        return self._sandbox.launch(argv, cwd=cwd, env=env)

    def stop_all(self) -> None:
        self._sandbox.stop_all()

    def close(self) -> None:
        try:
            self._sandbox.close()
        finally:
            self._egress.close()
