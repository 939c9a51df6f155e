"""Whether a build is skipped: previews off for its branch, a monorepo push that changes nothing
of the project, or the project's ignoreCommand exiting 0; and the skip written for the app.

A skipped build writes `builder.spec.SKIPPED` (`{"reason": "..."}`) instead of the manifest and
ends its log ok; the app then marks the deployment `skipped` and moves no alias.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Protocol

from builder import shell
from builder.buildlog import Log
from builder.confine import Confinement, ConfinementError
from builder.detect import Plan
from builder.errors import BuildError
from builder.siteconfig.records import Previews, SiteConfig
from builder.spec import SKIPPED, BuildSpec
from builder.upload import Storage, write_manifest

FETCH_TIMEOUT = 300
"""Seconds fetching the previous deployment's commit may take; past them the build goes on."""
DIFF_TIMEOUT = 120
IGNORE_TIMEOUT = 300
"""Seconds the ignoreCommand may take (at most the project's build timeout)."""


class Building(Protocol):
    """What the skip decision reads of a build (`builder.pipeline.Build`)."""

    spec: BuildSpec
    config: SiteConfig
    checkout: Path
    home: Path
    scratch: Path
    log: Log
    storage: Storage
    confinement: Confinement

    def git_env(self) -> dict[str, str]: ...

    def build_env(self) -> dict[str, str]: ...

    def run_confined(
        self, argv: Sequence[str], cwd: Path, env: Mapping[str, str], deadline: float
    ) -> int: ...


def skip_reason(build: Building, plan: Plan) -> str | None:
    """Why this build is not to be deployed, or None to build it.

    Run after detection, before install: previews first (no git, no command), then the
    monorepo check (git run by the builder, before anything of the build's runs in the
    checkout), then the ignoreCommand (in the build's confinement)."""
    spec, config = build.spec, build.config
    reason = previews_reason(spec.target, spec.branch, config.previews)
    if reason is not None:
        return reason
    root = _root_of(build.checkout, plan.root)
    wanted = root is not None or bool(config.ignore_command)
    previous = spec.previous_sha
    if not wanted:
        return None
    if not previous:
        build.log.line(
            "No ready deployment of this target to compare with: building "
            "(the monorepo check and ignoreCommand need one)"
        )
        return None
    have_previous = previous == spec.sha or _fetch(build, previous)
    if root is not None:
        reason = monorepo_reason(build, root, have_previous=have_previous)
        if reason is not None:
            return reason
    if config.ignore_command:
        return ignore_reason(build, config.ignore_command, plan.root)
    return None


def record(build: Building, reason: str) -> None:
    """Write the skip for the app, in place of the manifest."""
    build.log.line(f"Skipped: {reason}. Nothing was deployed; what was live stays live.")
    write_manifest(
        build.storage, build.spec.output_prefix + SKIPPED, {"reason": reason}, build.scratch
    )


# --- previews ---------------------------------------------------------------------------------


def previews_reason(target: str, branch: str, previews: Previews) -> str | None:
    """Why a preview of `branch` is not built, or None (production is never skipped here)."""
    if target != "preview":
        return None
    if not previews.enabled:
        return f"previews are off for branch {branch}" if branch else "previews are off"
    if not branch:
        return None  # a tag or a bare commit: branch globs do not apply
    excluded = next((glob for glob in previews.exclude if fnmatchcase(branch, glob)), None)
    if excluded is not None:
        return f"previews are off for branch {branch} (it matches exclude {excluded!r})"
    if previews.include and not any(fnmatchcase(branch, glob) for glob in previews.include):
        globs = ", ".join(repr(glob) for glob in previews.include)
        return f"previews are off for branch {branch} (it matches no include: {globs})"
    return None


# --- monorepos --------------------------------------------------------------------------------


def _root_of(checkout: Path, root: Path) -> str | None:
    """The root directory relative to the checkout, POSIX style; None when it is the checkout."""
    relative = os.path.relpath(root.resolve(), checkout.resolve())
    if relative == "." or relative.startswith(".."):
        return None
    return PurePosixPath(Path(relative).as_posix()).as_posix()


def _fetch(build: Building, previous: str) -> bool:
    """Fetch the previous deployment's commit (one commit deep); False when it cannot be had."""
    build.log.line(f"Fetching the last ready deployment's commit, {previous[:7]}")
    argv = ["git", "fetch", "--depth", "1", "--no-tags", "origin", previous]
    try:
        code = shell.run(
            argv,
            cwd=build.checkout,
            env=build.git_env(),  # the token only in the environment, as for the clone
            on_line=build.log.output,
            deadline=time.monotonic() + FETCH_TIMEOUT,
        )
    except shell.ShellError as exc:
        build.log.line(f"Could not fetch {previous[:7]} ({exc}): building")
        return False
    if code:
        build.log.line(f"Could not fetch {previous[:7]} (was it force-pushed away?): building")
        return False
    return True


def changed_files(build: Building, previous: str) -> list[str] | None:
    """The paths that differ between `previous` and the commit built; None when git cannot say."""
    argv = ["git", "diff", "--name-only", "-z", "--no-renames", previous, build.spec.sha, "--"]
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv, no shell; the shas are checked hex
            argv,
            cwd=build.checkout,
            env=build.git_env(),
            capture_output=True,
            timeout=DIFF_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        build.log.line(f"git diff could not run: {exc}")
        return None
    if done.returncode:
        error = done.stderr.decode("utf-8", "replace").strip()
        build.log.line(f"git diff exited with code {done.returncode}: {error}")
        return None
    # NUL-separated: a file name may hold newlines, quotes or any byte.
    return [name.decode("utf-8", "surrogateescape") for name in done.stdout.split(b"\0") if name]


def watched(path: str, roots: Sequence[str]) -> bool:
    """Whether a changed `path` is under one of `roots` (a directory, a file or a glob)."""
    for root in roots:
        prefix = root.strip("/")
        if prefix in ("", "."):
            return True
        if path == prefix or path.startswith(prefix + "/") or fnmatchcase(path, prefix):
            return True
    return False


def monorepo_reason(build: Building, root: str, *, have_previous: bool) -> str | None:
    """Why a push that changes nothing under the root directory (nor the watch paths) is
    skipped, or None to build."""
    spec = build.spec
    if spec.previous_sha == spec.sha:
        build.log.line("The last ready deployment has this same commit: building it again")
        return None
    if not have_previous:
        return None
    changed = changed_files(build, spec.previous_sha)
    if changed is None:
        build.log.line("Could not tell which files changed: building")
        return None
    roots = [root, *build.config.watch_paths]
    names = ", ".join(f"{path}/" for path in roots)
    touching = [path for path in changed if watched(path, roots)]
    since = f"since {spec.previous_sha[:7]}"
    if touching:
        build.log.line(f"{len(touching)} changed file(s) under {names} {since}: building")
        return None
    return f"no file under {names} changed {since} ({len(changed)} file(s) changed elsewhere)"


# --- ignoreCommand ----------------------------------------------------------------------------


def ignore_env(build: Building) -> dict[str, str]:
    """The build's environment, and the commits to compare under the names Scale Mesh, Vercel
    and Netlify give them (added after `build_env`, which drops every `SCALEMESH_` name)."""
    spec = build.spec
    previous = spec.previous_sha
    return build.build_env() | {
        "SCALEMESH_PREVIOUS_SHA": previous,
        "SCALEMESH_SHA": spec.sha,
        "SCALEMESH_BRANCH": spec.branch,
        "SCALEMESH_TARGET": spec.target,
        "VERCEL_GIT_PREVIOUS_SHA": previous,
        "VERCEL_GIT_COMMIT_SHA": spec.sha,
        "VERCEL_GIT_COMMIT_REF": spec.branch,
        "VERCEL_ENV": spec.target,
        "CACHED_COMMIT_REF": previous,
        "COMMIT_REF": spec.sha,
        "BRANCH": spec.branch,
    }


def ignore_reason(build: Building, command: str, cwd: Path) -> str | None:
    """Run the ignoreCommand in the build's confinement, in the root directory `cwd` (as
    Vercel does): exit 0 skips, any other code builds.

    A command killed (by a limit or its timeout) fails the build: whether to deploy was not
    decided, and deploying anyway would defeat the command."""
    spec = build.spec
    source = build.config.source
    where = f" (ignoreCommand of {source})" if source else " (ignoreCommand)"
    build.log.line(f"Running {command}{where} to decide whether to build")
    build.confinement.hand_over([build.checkout, build.home])
    timeout = min(IGNORE_TIMEOUT, spec.timeout)
    argv, deadline = ["sh", "-c", command], time.monotonic() + timeout
    try:
        code = build.run_confined(argv, cwd, ignore_env(build), deadline)
    except shell.TimedOut:
        raise BuildError(f"the ignoreCommand timed out after {timeout} s") from None
    try:
        # Nothing it started may go on running while the builder reads the checkout again
        # (the install step's toolchain files): it could swap them between check and read.
        build.confinement.stop_all()
    except ConfinementError as exc:
        raise BuildError(f"the ignoreCommand's processes could not all be stopped: {exc}") from None
    signum = shell.killed_by(code)
    if signum:
        raise BuildError(f"the ignoreCommand {command!r} was killed by {shell.signal_name(signum)}")
    if code == 0:
        build.log.line("The ignoreCommand exited with code 0: skipping this build")
        return f"the ignoreCommand {command!r} exited with code 0"
    build.log.line(f"The ignoreCommand exited with code {code}: building")
    return None
