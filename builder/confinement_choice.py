"""Which confinement the project's commands run in, from what the builder was started with."""

from __future__ import annotations

import json

from builder.confine import Confine, RunAs, Unconfined, given
from builder.spec import BuildLimits, SpecError

SANDBOX = "SCALEMESH_BUILDER_SANDBOX"
"""JSON the local runner sets: `{"kind": "bubblewrap", ...}` or `{"kind": "none"}` (unsafe)."""


def confinement_for(run_as: tuple[int, int] | None, sandbox: str, limits: BuildLimits) -> Confine:
    """`run_as` (the builder image's uid:gid) wins; else the sandbox the local runner chose.

    With neither, refuse: a build never runs unconfined unless someone asked for it."""
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
    raise SpecError(f"{SANDBOX} names no known sandbox ({kind!r})")
