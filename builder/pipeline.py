"""The build: clone, detect, install, build and upload, each step logged and timed in turn."""

from __future__ import annotations

import shlex
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from builder import build_cache, shell, skipping
from builder.buildlog import Log, size_text
from builder.confine import BUILD_ROOT, Confine, Confinement, ConfinementError
from builder.detect import Plan, detect
from builder.errors import BuildError, Stopped
from builder.generators import tool_path
from builder.logsink import LogSink, LogSinkError, basic_auth
from builder.siteconfig import effective
from builder.siteconfig.reading import read_config
from builder.siteconfig.records import SiteConfig
from builder.siterules.files import problems as site_rule_problems
from builder.spec import MANIFEST, MANIFEST_VERSION, BuildLimits, BuildSpec
from builder.staging import stage
from builder.toolchains.setup import TOOLCHAIN_ENV, prepare_toolchains
from builder.upload import (
    Storage,
    StorageError,
    UploadedFile,
    missing_output,
    upload_output,
    write_manifest,
)

CLONE_TIMEOUT = 600
"""Seconds the clone may take; it does not count against the project's build timeout."""
_FORBIDDEN_PREFIXES = ("SCALEMESH_", "AWS_")
_OUTPUT_HINTS = {
    "next": "; Next.js writes out/ only with output: 'export' in next.config.js",
}


def run(
    spec: BuildSpec,
    sink: LogSink,
    storage: Storage,
    *,
    path: str,
    confine: Confine,
    work_root: Path | None = None,
    toolchains: Path | None = None,
) -> bool:
    """Build `spec` and upload its output to `storage`; True when it is deployed.

    `path` is the PATH commands run with (it is all they get of the builder's environment).
    The project's commands run in the confinement `confine` makes (a sandbox, or an
    unprivileged user), so they cannot read the builder's own environment (its clone token) or
    touch its files; every process of theirs is killed before the output is read. `work_root`:
    where the build's directory is made (the system's temporary directory when None).
    `toolchains`: the cache Node and bun versions are fetched into (`builder.toolchains`).
    Every outcome ends with an `end` event; only a failing log sink raises (`LogSinkError`).
    """
    log = Log(sink, max_bytes=spec.limits.max_log_mb << 20)
    durations: dict[str, int] = {}
    with tempfile.TemporaryDirectory(
        prefix="scalemesh-build-", dir=work_root, ignore_cleanup_errors=True
    ) as tmp:
        try:
            build = Build(spec, log, storage, path=path, workdir=Path(tmp), confine=confine)
            build.toolchains = toolchains
        except ConfinementError as exc:
            log.end(f"the build could not be confined: {exc}")
            return False
        log.line(f"Commands run in: {build.confinement.description}")
        try:
            error = _steps(build, log, durations)
        finally:
            # Before the `end` event: nothing of the build outlives its log.
            build.stop()
    log.end(error)
    return error is None


def _steps(build: Build, log: Log, durations: dict[str, int]) -> str | None:
    """Run the five steps; None when deployed, else why not in one line."""
    try:
        with log.running("clone", durations):
            build.clone()
        with log.running("detect", durations):
            plan = build.detect()
            skipped = skipping.skip_reason(build, plan)
        if skipped is not None:
            skipping.record(build, skipped)
            return None
        with log.running("install", durations):
            build.install(plan)
        with log.running("build", durations):
            build.build(plan)
        with log.running("upload", durations):
            build_cache.save(build, plan)
            build.upload(plan, durations)
    except (BuildError, StorageError) as exc:
        return f"{log.step} failed: {exc}"
    except Stopped:
        return f"{log.step} stopped: the build was cancelled"
    except LogSinkError:
        raise
    except Exception as exc:  # a bug or a broken machine: still end the log with a reason
        traceback.print_exc(file=sys.stderr)
        return f"{log.step} failed: internal error ({type(exc).__name__}: {exc})"
    return None


class Build:
    """One build's state as it moves through the steps."""

    def __init__(
        self,
        spec: BuildSpec,
        log: Log,
        storage: Storage,
        *,
        path: str,
        workdir: Path,
        confine: Confine,
    ) -> None:
        self.spec = spec
        self.workdir = workdir
        self.log = log
        self.storage = storage
        self.path = tool_path(path)  # the builder's own generators (Hugo) too
        # The build may write `repo` and `home` only. `private` (scratch, staged output,
        # manifest) stays the builder's alone, and `workdir` itself is not the build's to
        # change, so no entry of ours can be swapped for a symlink.
        # Traversable by the build's own user (its sandbox binds these paths), listable by nobody.
        workdir.chmod(0o711)
        self.checkout = workdir / "repo"
        self.home = workdir / "home"
        private = workdir / "private"
        for directory in (self.checkout, self.home):
            directory.mkdir(mode=0o700)
        private.mkdir(mode=0o700)
        self.scratch = private / "scratch"
        self.staging = private / "output"
        self.scratch.mkdir(mode=0o700)
        self.deadline = 0.0
        self.toolchains: Path | None = None
        self.lockfile: str | None = None
        """The build cache's lockfile key (`build_cache.lockfile_key`), taken before the install."""
        self.config = SiteConfig()
        """The repository's config file, read after the clone (`builder.siteconfig`)."""
        binds = [(self.checkout, f"{BUILD_ROOT}/repo"), (self.home, f"{BUILD_ROOT}/home")]
        self.confinement: Confinement = confine(binds, log.line)

    def stop(self) -> None:
        """Kill whatever the build left running and release the confinement."""
        try:
            self.confinement.stop_all()
        except ConfinementError as exc:
            # Too late to fail the build for it (it has ended either way): say so.
            self.log.line(f"Warning: {exc}")
        finally:
            self.confinement.close()

    # --- clone ---------------------------------------------------------------------------

    def clone(self) -> None:
        spec = self.spec
        ref = f" ({spec.git_ref})" if spec.git_ref else ""
        self.log.line(f"Cloning {spec.git_url} at {spec.sha[:7]}{ref}")
        deadline = time.monotonic() + CLONE_TIMEOUT
        self._git(["init", "-q"], deadline)
        self._git(["remote", "add", "origin", spec.git_url], deadline)
        shallow = ["fetch", "--depth", "1", "--no-tags", "origin", spec.sha]
        if self._git(shallow, deadline, allow_failure=True):
            # Servers that do not allow fetching an unadvertised commit: take everything.
            self.log.line("The server would not send the commit alone; fetching all branches")
            if self._git(["fetch", "--tags", "origin"], deadline, allow_failure=True):
                raise BuildError(f"could not fetch {spec.git_url} (commit {spec.sha})")
        checkout = ["-c", "advice.detachedHead=false", "checkout", "-q", "--detach", spec.sha]
        if self._git(checkout, deadline, allow_failure=True):
            raise BuildError(f"commit {spec.sha} was not found in {spec.git_url}")

    def _git(self, args: Sequence[str], deadline: float, *, allow_failure: bool = False) -> int:
        """Run git in the checkout; a non-zero exit code fails the step unless allowed."""
        try:
            code = shell.run(
                ["git", *args],
                cwd=self.checkout,
                env=self.git_env(),
                on_line=self.log.output,
                deadline=deadline,
            )
        except shell.TimedOut:
            raise BuildError(
                f"cloning {self.spec.git_url} timed out after {CLONE_TIMEOUT} s"
            ) from None
        except shell.ShellError as exc:
            raise BuildError(str(exc)) from None
        if code and not allow_failure:
            raise BuildError(f"git {args[0]} exited with code {code} for {self.spec.git_url}")
        return code

    def git_env(self) -> dict[str, str]:
        env = {
            "PATH": self.path,
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        if self.spec.token:
            # Only through the environment, scoped to the repository's host: never in argv
            # (visible in `ps`), the remote URL, .git/config or an error message.
            url = urlsplit(self.spec.git_url)
            env |= {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": f"http.{url.scheme}://{url.netloc}/.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic_auth(self.spec.token)}",
            }
        return env

    # --- detect --------------------------------------------------------------------------

    def detect(self) -> Plan:
        spec = self.spec
        self.config = read_config(self.checkout, spec)
        for line in effective.file_lines(self.config):
            self.log.line(line)
        given = effective.given(spec, self.config)
        plan = detect(self.checkout, **given, framework=self.config.framework)
        manager = f" ({plan.package_manager})" if plan.package_manager else ""
        self.log.line(f"Detected {plan.framework}{manager}: {plan.reason}")
        if given["root_directory"]:
            self.log.line(f"Root directory: {given['root_directory']}")
        self.log.line(f"Output directory: {plan.output_directory}")
        for line in effective.log_lines(spec, self.config, plan):
            self.log.line(line)
        return plan

    # --- install and build ---------------------------------------------------------------

    def install(self, plan: Plan) -> None:
        # Install and build share one budget, spec.timeout, counted from here.
        self.deadline = time.monotonic() + self.spec.timeout
        config = self.config
        self.path = prepare_toolchains(
            self.checkout, plan, config.node_version, config.source, self.toolchains, self.path,
            self.log.line,
        )  # fmt: skip
        # After the toolchain is chosen (it is part of the key), before hand_over: hashed once,
        # before the install and build can change what it covers; with the variables the
        # install runs with, which may change what it installs.
        self.lockfile = build_cache.lockfile_key(plan, self.path, self.build_env())
        restored = build_cache.restore(self, plan)
        self.confinement.hand_over([self.checkout, self.home])
        if plan.install is None:
            self.log.line("No install step: there is no package.json")
            return
        install = build_cache.install_argv(self, plan.install, restored)
        if install is not None:
            self._command(install, plan.install_dir)

    def build(self, plan: Plan) -> None:
        if plan.build is None:
            why = "package.json has no build script" if plan.package_manager else "static site"
            self.log.line(f"No build step: {why}")
            return
        self._command(plan.build, plan.root)

    def _command(self, argv: Sequence[str], cwd: Path) -> None:
        command = shlex.join(argv)
        self.log.line(f"Running {command}")
        try:
            code = self.run_confined(argv, cwd, self.build_env(), self.deadline)
        except shell.TimedOut:
            raise BuildError(
                f"{command} timed out after {self.spec.timeout} s (install and build together)"
            ) from None
        signum = shell.killed_by(code)
        if signum:
            why = _limit_hint(signum, self.spec.limits)
            raise BuildError(f"{command} was killed by {shell.signal_name(signum)}{why}")
        if code:
            raise BuildError(f"{command} exited with code {code}")

    def run_confined(
        self, argv: Sequence[str], cwd: Path, env: Mapping[str, str], deadline: float
    ) -> int:
        """Run one of the project's commands in the build's confinement; its exit code.

        Raises `BuildError` when it cannot be started, `shell.TimedOut` past `deadline` (each
        caller says which budget it ran out of)."""
        try:
            launch = self.confinement.launch(argv, cwd=cwd, env=env)
        except ConfinementError as exc:
            command = shlex.join(argv)
            raise BuildError(f"{command} could not be started in its sandbox: {exc}") from None
        try:
            return shell.run(
                launch.argv,
                cwd=launch.cwd,
                env=launch.env,
                on_line=self.log.output,
                deadline=deadline,
                popen=launch.popen,
            )
        except shell.TimedOut:
            raise
        except shell.ShellError as exc:
            raise BuildError(str(exc)) from None

    def build_env(self) -> dict[str, str]:
        """The whole environment of install and build: nothing of the builder's own leaks in."""
        # The project's variables win over the config file's.
        env = {"LANG": "C.UTF-8", **TOOLCHAIN_ENV, **self.config.env, **self.spec.env}
        env |= {
            "PATH": self.path,
            "HOME": str(self.home),
            "CI": "1",
            "COREPACK_ENABLE_DOWNLOAD_PROMPT": "0",
        }
        secrets = [self.spec.token] if self.spec.token else []
        return {
            name: value
            for name, value in env.items()
            if not name.startswith(_FORBIDDEN_PREFIXES)
            and not any(secret in value for secret in secrets)
        }

    # --- upload --------------------------------------------------------------------------

    def upload(self, plan: Plan, durations: dict[str, int]) -> None:
        started = time.monotonic()
        try:
            # Nothing of the build may run while its output is read.
            self.confinement.stop_all()
        except ConfinementError as exc:
            raise BuildError(f"the build's processes could not all be stopped: {exc}") from None
        output = plan.root / plan.output_directory
        label = f"{plan.output_directory.rstrip('/')}/"
        hint = _OUTPUT_HINTS.get(plan.framework, "")
        if not output.is_dir():
            raise BuildError(f"{missing_output(label, empty=False)}{hint}")
        # A copy only the builder can write, read through O_NOFOLLOW descriptors, checked
        # and capped: what is uploaded is what this read, whatever the build left behind.
        files = stage(
            self.checkout, plan.output_path, self.staging, self.spec.limits, self.log.line
        )
        for problem in site_rule_problems(files):
            self.log.line(f"Warning: {problem}")
        self.log.line(f"Uploading {len(files)} files from {label}")
        uploaded = upload_output(files, self.storage, self.spec.output_prefix, self.scratch)
        steps = {**durations, "upload": round((time.monotonic() - started) * 1000)}
        manifest = self.manifest(plan, uploaded.files, steps)
        write_manifest(self.storage, self.spec.output_prefix + MANIFEST, manifest, self.scratch)
        self.log.line(
            f"Uploaded {len(uploaded.files)} files ({size_text(uploaded.bytes)}) and "
            f"{uploaded.siblings} compressed copies"
        )

    def manifest(
        self, plan: Plan, files: Mapping[str, UploadedFile], steps: Mapping[str, int]
    ) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "deployment_id": self.spec.deployment_id,
            "project_id": self.spec.project_id,
            "sha": self.spec.sha,
            "framework": plan.framework,
            "output_directory": plan.output_directory,
            "files": {path: record.to_json() for path, record in files.items()},
            "steps": dict(steps),
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "config": effective.manifest_config(self.spec, self.config, plan),
        } | ({"rules": dict(self.config.rules)} if self.config.rules is not None else {})


def _limit_hint(signum: int, limits: BuildLimits) -> str:
    """Which limit a signal most likely means, for the error."""
    if signum == signal.SIGKILL:
        return f" (did it pass the memory limit, {limits.memory_mb} MB? SCALEMESH_BUILD_MEMORY_MB)"
    if signum == signal.SIGXCPU:
        return f": it used its {limits.cpu_seconds} s of CPU time (SCALEMESH_BUILD_CPU_SECONDS)"
    if signum == signal.SIGXFSZ:
        return f": it wrote a file past {limits.max_file_mb} MB (SCALEMESH_BUILD_MAX_FILE_MB)"
    return ""
