"""Which sandbox the local runner's builds get: bubblewrap when it works here, else none only
when SCALEMESH_UNSAFE_LOCAL_BUILDS=1 says so; otherwise the runner refuses to start."""

from __future__ import annotations

import json
import logging

from app.runners.api import RunnerError
from app.runners.local import NO_SANDBOX
from app.settings import Settings
from builder import sandbox
from builder.confine import ConfinementError
from builder.confinement_choice import build_uid

log = logging.getLogger(__name__)


def choose_sandbox(settings: Settings) -> str:
    """The JSON the builder reads from `SCALEMESH_BUILDER_SANDBOX`."""
    bwrap = None
    try:
        bwrap = sandbox.find_bwrap()
        reason = sandbox.probe(settings.build_limits, bwrap=bwrap, host_uid=build_uid())
    except ConfinementError as exc:
        reason = str(exc)
    if bwrap is not None and reason is None:
        log.info("local builds run in a bubblewrap sandbox", extra={"bwrap": str(bwrap)})
        return json.dumps(
            {
                "kind": "bubblewrap",
                "bwrap": str(bwrap),
                "readonly_paths": [str(path) for path in settings.sandbox_readonly_paths],
                "allow_networks": list(settings.egress_allow_networks),
            }
        )
    if settings.unsafe_local_builds:
        log.warning(
            "no sandbox for local builds; building without one (SCALEMESH_UNSAFE_LOCAL_BUILDS=1)",
            extra={"error": reason},
        )
        return NO_SANDBOX
    raise RunnerError(
        f"local builds need a sandbox, and none can be set up here ({reason}). Set "
        "SCALEMESH_UNSAFE_LOCAL_BUILDS=1 to build without one, only on a machine you trust "
        "every repository on"
    )
