"""`python -m builder`: build the commit the environment describes; exit 0 only when deployed.

Exit codes: 0 deployed, 1 the build failed (the log's `end` event says why), 2 a bad spec.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping
from types import FrameType
from typing import TextIO

from builder import pipeline
from builder.errors import Stopped
from builder.events import LogEvent
from builder.logsink import LogSinkError, Masker, StdoutSink, open_sink
from builder.spec import BuildSpec, SpecError
from builder.upload import open_storage

OK, FAILED, BAD_SPEC = 0, 1, 2


RUN_AS = "SCALEMESH_BUILDER_RUN_AS"
"""`uid:gid` the project's commands run as; set by the builder image, which starts as root."""


def parse_run_as(raw: str) -> tuple[int, int] | None:
    """The (uid, gid) of `RUN_AS`, or None when unset; root itself is refused."""
    if not raw:
        return None
    uid, _, gid = raw.partition(":")
    if not (uid.isdigit() and gid.isdigit()) or int(uid) == 0 or int(gid) == 0:
        raise SpecError(f"{RUN_AS} must be uid:gid of an unprivileged user, not {raw!r}")
    return int(uid), int(gid)


def main(environ: Mapping[str, str] | None = None, stdout: TextIO | None = None) -> int:
    environ = os.environ if environ is None else environ
    stdout = sys.stdout if stdout is None else stdout
    try:
        spec = BuildSpec.from_env(environ)
        run_as = parse_run_as(environ.get(RUN_AS, ""))
        storage = open_storage(spec.storage_url, endpoint_url=spec.storage_endpoint_url)
    except SpecError as exc:
        return _refuse(exc, stdout)
    try:
        sink = open_sink(spec, Masker.for_spec(spec), stdout)
    except SpecError as exc:
        storage.close()
        return _refuse(exc, stdout)
    except LogSinkError as exc:
        storage.close()
        return _sink_failed(exc)
    ok = False
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        ok = pipeline.run(spec, sink, storage, path=environ.get("PATH", os.defpath), run_as=run_as)
        sink.close()
    except LogSinkError as exc:
        return _sink_failed(exc)
    finally:
        signal.signal(signal.SIGTERM, previous)
        storage.close(cancel=not ok)
    return OK if ok else FAILED


def _refuse(error: SpecError, stdout: TextIO) -> int:
    print(f"builder: bad build spec: {error}", file=sys.stderr)
    # The local runner reads stdout: give it the reason too. Nothing secret is known yet.
    end: LogEvent = {
        "type": "end",
        "ok": False,
        "error": f"bad build spec: {error}",
        "ts": time.time(),
    }
    StdoutSink(Masker(()), stdout).emit(end)
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
