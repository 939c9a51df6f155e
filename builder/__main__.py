"""`python -m builder`: build one commit; exit 0 only when it is deployed.

Where the spec comes from: on ECS the task holds only `SCALEMESH_BUILD_TOKEN`, with which the
builder fetches its spec once from the API and sends its log there (`builder.remote`); run by
the local runner it reads the spec as JSON on stdin and writes its log to stdout as JSON lines.
What the project's commands run in: `SCALEMESH_BUILDER_RUN_AS` (the builder image), or the
sandbox the local runner describes in `SCALEMESH_BUILDER_SANDBOX`; with neither it refuses.

Exit codes: 0 deployed, 1 the build failed (the log's `end` event says why), 2 a bad spec.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import TextIO

from builder import pipeline, remote
from builder.confine import Confine
from builder.confinement_choice import SANDBOX, confinement_for
from builder.errors import Stopped
from builder.events import LogEvent
from builder.logsink import LogSink, LogSinkError, Masker, StdoutSink
from builder.spec import BuildSpec, SpecError
from builder.upload import open_storage

OK, FAILED, BAD_SPEC = 0, 1, 2

RUN_AS = "SCALEMESH_BUILDER_RUN_AS"
"""`uid:gid` the project's commands run as; set by the builder image, which starts as root."""
WORK_ROOT = "SCALEMESH_BUILDER_WORK_ROOT"
"""Where the build's directory is made (the local runner's, inside the data directory)."""
TOOLCHAINS = "SCALEMESH_BUILDER_TOOLCHAINS"
"""The toolchain cache (Node and bun versions a build asks for); builds only read it."""
MAX_SPEC_BYTES = 1 << 20


def parse_run_as(raw: str) -> tuple[int, int] | None:
    """The (uid, gid) of `RUN_AS`, or None when unset; root itself is refused."""
    if not raw:
        return None
    uid, _, gid = raw.partition(":")
    if not (uid.isdigit() and gid.isdigit()) or int(uid) == 0 or int(gid) == 0:
        raise SpecError(f"{RUN_AS} must be uid:gid of an unprivileged user, not {raw!r}")
    return int(uid), int(gid)


def read_spec(stdin: TextIO) -> BuildSpec:
    raw = stdin.read(MAX_SPEC_BYTES + 1)
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError("the build spec on stdin is larger than 1 MB")
    try:
        return BuildSpec.from_json(json.loads(raw or "null"))
    except json.JSONDecodeError:
        raise SpecError("the build spec on stdin is not JSON") from None


def main(
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    environ = os.environ if environ is None else environ
    stdout = sys.stdout if stdout is None else stdout
    stdin = sys.stdin if stdin is None else stdin
    remote_mode = bool(environ.get(remote.TOKEN_VARIABLE))
    sink: LogSink | None = None
    try:
        if remote_mode:
            spec, sink = remote.open_remote(environ)
        else:
            spec = read_spec(stdin)
            sink = StdoutSink(Masker.for_spec(spec), stdout)
        toolchains = _toolchains(environ)
        confine = _confinement(environ, spec, toolchains)
        storage = open_storage(
            spec.storage_url,
            endpoint_url=spec.storage_endpoint_url,
            credentials=spec.storage_credentials,
        )
    except remote.RemoteError as exc:
        print(f"builder: {exc}", file=sys.stderr)
        return FAILED
    except SpecError as exc:
        return _refuse(exc, sink or StdoutSink(Masker(()), stdout))
    ok = False
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        ok = pipeline.run(
            spec,
            sink,
            storage,
            path=environ.get("PATH", os.defpath),
            confine=confine,
            work_root=_work_root(environ),
            toolchains=toolchains,
        )
        sink.close()
    except LogSinkError as exc:
        return _sink_failed(exc)
    finally:
        signal.signal(signal.SIGTERM, previous)
        storage.close(cancel=not ok)
    return OK if ok else FAILED


def _confinement(environ: Mapping[str, str], spec: BuildSpec, toolchains: Path | None) -> Confine:
    run_as = parse_run_as(environ.get(RUN_AS, ""))
    return confinement_for(run_as, environ.get(SANDBOX, ""), spec.limits, toolchains=toolchains)


def _work_root(environ: Mapping[str, str]) -> Path | None:
    raw = environ.get(WORK_ROOT, "")
    return Path(raw) if raw else None


def _toolchains(environ: Mapping[str, str]) -> Path | None:
    raw = environ.get(TOOLCHAINS, "")
    if not raw:
        return None
    path = Path(raw).absolute()
    try:
        # Made now: the sandbox mounts it before any build asks for something in it.
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError(f"{TOOLCHAINS} {path} cannot be made: {exc.strerror}") from None
    return path


def _refuse(error: SpecError, sink: LogSink) -> int:
    print(f"builder: bad build spec: {error}", file=sys.stderr)
    # The runner reads the log: give it the reason too (masked, as every event is).
    end: LogEvent = {
        "type": "end",
        "ok": False,
        "error": f"bad build spec: {error}",
        "ts": time.time(),
    }
    try:
        sink.emit(end)
        sink.close()
    except LogSinkError as exc:
        return _sink_failed(exc)
    return BAD_SPEC


def _sink_failed(error: LogSinkError) -> int:
    # Nowhere left to log to but the process's own stderr (the task's log under ECS).
    print(f"builder: {error}", file=sys.stderr)
    return FAILED


def _stop(signum: int, frame: FrameType | None) -> None:
    # Once is enough: a second SIGTERM must not interrupt the cleanup the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stopped


if __name__ == "__main__":  # pragma: no cover - the entry shim; tests run it as a subprocess
    sys.exit(main())
