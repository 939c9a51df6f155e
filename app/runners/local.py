"""Run each build as a child process of this app: the runner for one machine and `scalemesh dev`.

The builder runs in its own process group and working directory, with only the environment it
is given; it reads its spec as JSON on stdin, and writes its log to stdout as JSON lines
(DESIGN §8), which a reader task per stream feeds into the log bus. It dies with this process.
The builder itself is ours; the project's commands it runs are confined in the sandbox the
runner was given (`app.runners.sandbox_choice`), or in none with SCALEMESH_UNSAFE_LOCAL_BUILDS=1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from app.logs.bus import LogBus
from app.runners.api import CANCELLED_REASON, RunnerError, RunState, RunStatus
from app.runners.local_output import lines, stderr_events, stdout_events
from builder.confinement_choice import SANDBOX
from builder.events import LogEvent
from builder.spec import BuildSpec, Masker

log = logging.getLogger(__name__)

HANDLE_KIND = "local"
RESTARTED = "interrupted by a restart"
KEEP_FINISHED = 1000
"""How many final states to remember, so a repeated poll of a finished build still answers."""
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
WORK_ROOT = "SCALEMESH_BUILDER_WORK_ROOT"
UNSAFE_WARNING = (
    "WARNING: this build runs WITHOUT a sandbox (SCALEMESH_UNSAFE_LOCAL_BUILDS=1): "
    "its commands can read and change everything this machine's Scale Mesh user can"
)
TOOLCHAINS = "SCALEMESH_BUILDER_TOOLCHAINS"
NO_SANDBOX = json.dumps({"kind": "none"})


@dataclass(eq=False)
class _Build:
    deployment_id: str
    process: asyncio.subprocess.Process
    workdir: Path
    masker: Masker = field(repr=False)
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    cancelled: bool = False
    discard: bool = False
    """Set once the build is finished: output that still arrives is read but not stored."""
    killer: asyncio.Task[None] | None = None
    finishing: asyncio.Task[RunState] | None = None


class LocalRunner:
    """Runs `python -m builder` as a subprocess; handles are `local:<runner id>:<pid>`.

    The runner id is random per instance, so after a restart the handles of the builds the old
    process ran are recognisably foreign and reported GONE.
    """

    shared_handles = False
    """A local build is a process of this machine."""

    def __init__(
        self,
        bus: LogBus,
        base_env: Mapping[str, str],
        work_root: Path,
        python: str = sys.executable,
        command: Sequence[str] | None = None,
        *,
        sandbox: str,
        toolchains: Path | None = None,
        cancel_grace: float = 5.0,
        drain_timeout: float = 10.0,
    ) -> None:
        """`sandbox`: the JSON the builder reads from `SCALEMESH_BUILDER_SANDBOX`; `NO_SANDBOX`
        runs builds unconfined (only ever with SCALEMESH_UNSAFE_LOCAL_BUILDS=1)."""
        self._bus = bus
        self._sandbox = sandbox
        self.unsafe = sandbox == NO_SANDBOX
        self._base_env = dict(base_env)
        self._work_root = work_root
        self._toolchains = {TOOLCHAINS: str(toolchains)} if toolchains else {}
        # -P: the working directory (where the project is cloned) must not shadow the
        # builder's own imports.
        self._command = list(command) if command is not None else [python, "-P", "-m", "builder"]
        self._cancel_grace = cancel_grace
        self._drain_timeout = drain_timeout
        self._id = secrets.token_hex(6)
        self._builds: dict[int, _Build] = {}
        self._finished: dict[int, RunState] = {}
        self._stragglers: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self, spec: BuildSpec) -> str:
        if self._closed:
            raise RunnerError("the local runner is shut down")
        workdir = await asyncio.to_thread(self._make_workdir, spec.deployment_id)
        env = {
            **self._base_env,
            SANDBOX: self._sandbox,
            WORK_ROOT: str(workdir),
            **self._toolchains,
            # A piped stdout is block-buffered: without this the live log arrives in bursts.
            "PYTHONUNBUFFERED": "1",
        }
        if self.unsafe:
            log.warning(
                "build runs without a sandbox (SCALEMESH_UNSAFE_LOCAL_BUILDS=1)",
                extra={"deployment_id": spec.deployment_id},
            )
            warning: LogEvent = {
                "type": "line",
                "ts": time.time(),
                "stream": "system",
                "text": UNSAFE_WARNING,
            }
            await self._bus.append(spec.deployment_id, warning)
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command,
                cwd=workdir,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                # Its own process group, so cancel reaches whatever the build spawned.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)
            raise RunnerError(f"could not start the builder: {exc}") from exc
        assert process.stdin is not None  # noqa: S101 - piped above
        # The spec (clone token, env values) goes through a pipe only the builder reads:
        # never its environment, which /proc shows to every process of this user.
        process.stdin.write(json.dumps(spec.to_json()).encode())
        with contextlib.suppress(OSError):
            await process.stdin.drain()
        process.stdin.close()
        pid = process.pid
        build = _Build(spec.deployment_id, process, workdir, Masker.for_spec(spec))
        assert process.stdout is not None  # noqa: S101 - piped above
        assert process.stderr is not None  # noqa: S101 - piped above
        build.readers = [
            asyncio.create_task(self._pump(build, process.stdout, stdout_events)),
            asyncio.create_task(self._pump(build, process.stderr, stderr_events)),
        ]
        # A recycled pid must not answer with the state of the build that had it before.
        self._finished.pop(pid, None)
        self._builds[pid] = build
        handle = f"{HANDLE_KIND}:{self._id}:{pid}"
        log.info(
            "build process started",
            extra={"deployment_id": spec.deployment_id, "handle": handle, "pid": pid},
        )
        return handle

    async def poll(self, handle: str) -> RunState:
        pid = self._own_pid(handle)
        if pid is None:
            # Another worker process on this machine may run it; its owner will report back.
            if _foreign_builder_alive(handle):
                return RunState(RunStatus.RUNNING)
            return RunState(RunStatus.GONE, reason=RESTARTED)
        if (state := self._finished.get(pid)) is not None:
            return state
        build = self._builds.get(pid)
        if build is None:
            return RunState(RunStatus.GONE, reason="this runner has no record of the build")
        if build.process.returncode is None:
            return RunState(RunStatus.RUNNING)
        return await self._finish_once(pid, build)

    async def cancel(self, handle: str) -> None:
        pid = self._own_pid(handle)
        if pid is None and _foreign_builder_alive(handle):
            # Run by another worker on this machine: stop it; that worker reports the end.
            _kill_group(_handle_pid(handle), signal.SIGTERM)
            return
        build = self._builds.get(pid) if pid is not None else None
        if pid is None or build is None or build.process.returncode is not None or build.cancelled:
            return
        build.cancelled = True
        _kill_group(pid, signal.SIGTERM)
        build.killer = asyncio.create_task(self._kill_after_grace(pid, build))
        log.info("build cancelled", extra={"deployment_id": build.deployment_id, "pid": pid})

    async def aclose(self) -> None:
        """Kill every build still running, so none outlives the app, and wait for its output."""
        self._closed = True
        running = list(self._builds.items())
        for pid, build in running:
            if build.process.returncode is None:
                log.warning(
                    "build killed at shutdown",
                    extra={"deployment_id": build.deployment_id, "pid": pid},
                )
            _kill_group(pid, signal.SIGKILL)
        for pid, build in running:
            # Not `process.wait()`: it also waits for the pipes, which a build's escaped
            # child may hold open, and asyncio has no public exit-only event to wait on.
            # SIGKILL cannot be refused, so this ends.
            while build.process.returncode is None:  # noqa: ASYNC110 - see above
                await asyncio.sleep(0.02)
            await self._finish_once(pid, build)
        # Output still held open by a build's escaped child: give it the drain time, then drop it.
        stragglers = set(self._stragglers)
        if stragglers:
            await asyncio.wait(stragglers, timeout=self._drain_timeout)
            for task in stragglers:
                task.cancel()
            await asyncio.wait(stragglers)

    # --- internals ------------------------------------------------------------------------

    def _make_workdir(self, deployment_id: str) -> Path:
        self._work_root.mkdir(parents=True, exist_ok=True)
        prefix = _UNSAFE_NAME.sub("_", deployment_id)[:40] + "-"
        workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=self._work_root))
        # The sandbox's own host uid must pass through to the build's directories (bwrap opens
        # them as that uid); nobody may list what is in it.
        workdir.chmod(0o711)
        return workdir

    def _own_pid(self, handle: str) -> int | None:
        kind, _, rest = handle.partition(":")
        runner_id, _, pid = rest.partition(":")
        if kind != HANDLE_KIND or runner_id != self._id or not pid.isdigit():
            return None
        return int(pid)

    async def _kill_after_grace(self, pid: int, build: _Build) -> None:
        await asyncio.sleep(self._cancel_grace)
        # Once the builder itself is gone, `_finish` clears up the rest of its group.
        if build.process.returncode is None:
            log.warning(
                "build ignored SIGTERM; killing it",
                extra={"deployment_id": build.deployment_id, "pid": pid},
            )
            _kill_group(pid, signal.SIGKILL)

    async def _pump(
        self,
        build: _Build,
        stream: asyncio.StreamReader,
        to_events: Callable[[str, Masker], list[LogEvent]],
    ) -> None:
        warned = False
        async for line in lines(stream):
            if build.discard:
                continue
            try:
                for event in to_events(line, build.masker):
                    await self._bus.append(build.deployment_id, event)
            except Exception as exc:
                # Keep reading whatever happens: a full pipe would block the build for ever.
                if not warned:
                    log.warning(
                        "build log line lost",
                        extra={"deployment_id": build.deployment_id, "error": repr(exc)},
                    )
                    warned = True

    async def _finish_once(self, pid: int, build: _Build) -> RunState:
        if build.finishing is None:
            build.finishing = asyncio.create_task(self._finish(pid, build))
        # Shielded: a poller giving up must not leave the build half wrapped up.
        return await asyncio.shield(build.finishing)

    async def _finish(self, pid: int, build: _Build) -> RunState:
        # The builder has exited; what it left running in its group dies with it.
        _kill_group(pid, signal.SIGKILL)
        if build.killer is not None:
            build.killer.cancel()
            await asyncio.wait([build.killer])
        # Read the log to its end first: the reconciler finalises as soon as we answer.
        _, pending = await asyncio.wait(build.readers, timeout=self._drain_timeout)
        if pending:
            log.warning(
                "build left processes holding its output open",
                extra={"deployment_id": build.deployment_id, "pid": pid},
            )
            build.discard = True
            for task in pending:
                self._stragglers.add(task)
                task.add_done_callback(self._stragglers.discard)
        await asyncio.to_thread(shutil.rmtree, build.workdir, ignore_errors=True)
        returncode = build.process.returncode
        assert returncode is not None  # noqa: S101 - only finished builds get here
        state = _exit_state(returncode, cancelled=build.cancelled)
        del self._builds[pid]
        self._finished[pid] = state
        while len(self._finished) > KEEP_FINISHED:
            del self._finished[next(iter(self._finished))]
        log.info(
            "build process finished",
            extra={
                "deployment_id": build.deployment_id,
                "pid": pid,
                "exit_code": state.exit_code,
                "status": str(state.status),
            },
        )
        return state


def work_root_for(data_dir: Path, name: str = "builds") -> Path:
    """Where builds get their directories: `<data dir>/builds` when every directory above it
    lets others through (a sandbox's own host uid must reach its build's directory), else a
    directory of this runner's own in the system's temporary directory.

    `name="toolchains"`: the toolchain cache, which builds read, the same way; its fallback is
    one per user, kept from run to run (the builder refuses it unless it is ours alone)."""
    wanted = data_dir.resolve() / name
    wanted.mkdir(parents=True, exist_ok=True)
    if all(parent.stat().st_mode & 0o001 for parent in wanted.parents):
        return wanted
    if name == "toolchains":
        shared = Path(tempfile.gettempdir()) / f"scalemesh-toolchains-{os.geteuid()}"
        shared.mkdir(mode=0o755, exist_ok=True)
        return shared
    temporary = Path(tempfile.mkdtemp(prefix=f"scalemesh-{name}-"))
    temporary.chmod(0o711)
    return temporary


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child, before exec
    """In the builder, before exec: it gets SIGKILL when this process dies (Linux only).

    A build whose API died is then gone, not orphaned, and the reconciler queues it again."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


PR_SET_PDEATHSIG = 1


def _kill_group(pid: int, signum: signal.Signals) -> None:
    # Only called for builds still in `_builds`. A group id stays reserved while the group has
    # members; reusing it once the group is empty takes a pid wrap-around before the next poll.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _exit_state(returncode: int, *, cancelled: bool) -> RunState:
    # Negative return codes mean "killed by a signal"; report them the shell's way (128 + n),
    # as a container runtime does.
    exit_code = returncode if returncode >= 0 else 128 - returncode
    if cancelled:
        return RunState(RunStatus.FAILED, exit_code=exit_code, reason=CANCELLED_REASON)
    if returncode == 0:
        return RunState(RunStatus.SUCCEEDED, exit_code=0)
    if returncode > 0:
        reason = f"builder exited with code {returncode}"
    else:
        reason = f"builder killed by signal {-returncode} ({signal.Signals(-returncode).name})"
    return RunState(RunStatus.FAILED, exit_code=exit_code, reason=reason)


def _handle_pid(handle: str) -> int:
    pid = handle.rpartition(":")[2]
    return int(pid) if pid.isdigit() else 0


def _foreign_builder_alive(handle: str) -> bool:
    """Whether a local handle's process still runs here and is a builder (not a reused pid)."""
    if not handle.startswith(f"{HANDLE_KIND}:"):
        return False
    pid = _handle_pid(handle)
    if pid <= 0:
        return False
    proc = Path(f"/proc/{pid}")
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        environ = (proc / "environ").read_bytes()
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and f"{SANDBOX}=".encode() in environ
