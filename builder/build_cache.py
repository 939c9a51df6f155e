"""The build cache of a project's branch: restored before the install, saved after a successful
build, kept in storage at `__cache/<project>/<generation>/<branch key>.tar.zst`
(`builder.cache_keys`).

What it holds: the package managers' download caches in the build's home, `node_modules` (only
restored when the lockfile key matches), the frameworks' own caches, and the `cache` paths of
`scalemesh.json`. A branch without a cache of its own starts from its pull request's base
branch's, else from the production branch's (as Vercel's new branches do); a fork's pull
request reads those two and never its own.

Trust boundary: a cache is written by a build of arbitrary code, so it is hostile input to the
next one. It only ever reaches builds of the same project, of the same branch, or of a new
branch (or a fork's pull request) starting from its base branch's or the production branch's:
code that could push to that branch could already run anything in those builds. A fork's
build reads the cache and never writes it, so a stranger's pull request cannot poison what the
project's own branches build with. The builder extracts it through `builder.cache_archive`,
which refuses anything that would reach outside the build's two directories, and a cache that
cannot be read is a warning, never a failed build.
"""

from __future__ import annotations

import enum
import hashlib
import os
import platform
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from builder import repo_files
from builder.buildlog import Log, size_text
from builder.cache_archive import (
    EXPAND_FACTOR,
    FORMAT,
    ArchiveError,
    ArchiveTooLarge,
    extract_archive,
    write_archive,
)
from builder.cache_keys import cache_key
from builder.confine import Confinement, ConfinementError
from builder.detect import Plan
from builder.install_settings import CONFIG_FILES, tree_settings
from builder.siteconfig.records import SiteConfig
from builder.spec import BuildSpec
from builder.upload import Headers, Pending, Storage, StorageError

HOME_CACHES = (
    ".npm",  # npm's download cache (_cacache)
    ".local/share/pnpm/store",  # pnpm's content-addressed store
    ".cache/yarn",  # yarn 1
    ".yarn/berry/cache",  # yarn 2+ global cache
    ".bun/install/cache",
    ".cache/node/corepack",  # the pnpm and yarn releases corepack fetched
)
"""Below the build's HOME."""
FRAMEWORK_CACHES = (".next/cache", ".astro", "resources/_gen")
"""Below the app's root directory: Next.js, Astro, Hugo."""
MAX_LOCKFILE = 256 << 20
PACKAGE = "package.json"
HIDDEN_LOCKFILE = "node_modules/.package-lock.json"
CARRY = "cache-carry.tar.zst"
"""In the scratch directory: the restored archive, when its download caches were left unread."""
_CONTENT_TYPE = "application/zstd"


@runtime_checkable
class CacheStorage(Protocol):
    """A storage that can also read an object back (both of `builder.upload`'s can)."""

    def put(self, key: str, source: Path, headers: Headers) -> Pending: ...

    def get(self, key: str, target: Path) -> bool:
        """Copy the object at `key` to `target`, streamed; False when there is none."""


class Build(Protocol):
    """What of `builder.pipeline.Build` the cache uses."""

    spec: BuildSpec
    log: Log
    storage: Storage
    checkout: Path
    home: Path
    scratch: Path
    config: SiteConfig
    confinement: Confinement
    path: str
    """The PATH its commands run with: it names the toolchain chosen for it."""
    lockfile: str | None
    """`lockfile_key` of the checkout as the install found it: what the restored node_modules
    must match, and what the saved one was installed from."""


def branches_read(spec: BuildSpec) -> list[tuple[str, str]]:
    """The branches whose caches a build reads, in order, each with whose cache it is for the
    log: its own (never a fork's: that name is the fork's), its pull request's base branch, the
    production branch; each once."""
    own = "" if spec.from_fork else spec.branch
    read: dict[str, str] = {}
    for branch, whose in (
        (own, "{}'s own"),
        (spec.base_branch, "{}'s, the pull request's base branch"),
        (spec.production_branch, "{}'s, the production branch"),
    ):
        if branch:
            read.setdefault(branch, whose.format(f"branch {branch!r}"))
    return list(read.items())


class Restored(enum.Enum):
    """What a restore brought back, for the install."""

    NO_NODE_MODULES = "no node_modules"
    """No cache, or one of another lockfile key: the detected install runs as it is."""
    NODE_MODULES = "node_modules"
    """node_modules for this very lockfile key: npm checks it (`npm install`)."""
    INSTALLED = "installed"
    """node_modules as npm made it for this key, and npm would run nothing over it: no
    install runs, and the download caches were left in the archive (`CARRY`), unread."""


def restore(build: Build, plan: Plan) -> Restored:
    """Extract the best cache for this build into its home and checkout (before `hand_over`);
    say whether node_modules came back for this very lockfile and package.json."""
    spec, say = build.spec, build.log.line
    storage = build.storage
    if not isinstance(storage, CacheStorage):
        return Restored.NO_NODE_MODULES
    if spec.clear_cache:
        say("Build cache: not restored (redeploy without cache); a fresh one is saved")
        return Restored.NO_NODE_MODULES
    started = time.monotonic()
    archive = build.scratch / "cache-in.tar.zst"
    branches = branches_read(spec)
    for branch, whose in branches:  # noqa: B007 - the one found is named in the log below
        key = cache_key(spec.project_id, branch, spec.cache_generation)
        try:
            if storage.get(key, archive):
                break
        except StorageError as exc:
            say(f"Warning: the build cache {key} could not be read: {exc}")
    else:
        names = " or ".join(f"branch {name!r}" for name, _ in branches) or "a build of no branch"
        say(f"Build cache: miss (none for {names})")
        return Restored.NO_NODE_MODULES
    size = archive.stat().st_size
    lock = build.lockfile
    roots = {"home": build.home, "repo": build.checkout}
    bound = spec.limits.cache_mb * EXPAND_FACTOR << 20
    matched = False

    def choose(meta: Mapping[str, Any]) -> Callable[[str], bool]:
        nonlocal matched
        matched = lock is not None and meta.get("lockfile") == lock
        return lambda name: matched or "node_modules" not in name.split("/")

    stop: bool | None = None

    def until(name: str) -> bool:
        # Archives store the checkout's trees first: at the first download cache member,
        # node_modules is complete, and when no install will run, nothing more is needed.
        nonlocal stop
        if stop is None and name.startswith("home/"):
            stop = matched and plan.install_is_quiet and _npm_made(build.checkout, plan.install_dir)
        return bool(stop)

    try:
        done = extract_archive(archive, roots, choose, max_bytes=bound, until=until)
    except ArchiveError as exc:
        archive.unlink(missing_ok=True)
        say(f"Warning: the build cache {key} is unreadable ({exc}); building without it")
        return Restored.NO_NODE_MODULES
    if done.stopped:
        archive.rename(build.scratch / CARRY)
    else:
        archive.unlink()
    for refusal in done.refused[:10]:
        say(f"Warning: build cache entry refused: {refusal}")
    if len(done.refused) > 10:
        say(f"Warning: {len(done.refused) - 10} more build cache entries refused")
    modules = "matches: node_modules restored" if matched else "differs: node_modules not restored"
    kept = "; the download caches are kept for the next save, unread" if done.stopped else ""
    took = time.monotonic() - started
    say(
        f"Build cache: hit {key} ({whose}), {size_text(size)}; lockfile key {_short(lock)} "
        f"{modules}; {done.files} files ({size_text(done.bytes)}) restored in {took:.1f} s{kept}"
    )
    if done.stopped:
        return Restored.INSTALLED
    return Restored.NODE_MODULES if matched else Restored.NO_NODE_MODULES


def install_argv(
    build: Build, install: tuple[str, ...], restored: Restored
) -> tuple[str, ...] | None:
    """The install to run; None: none. `npm ci` deletes node_modules first, so over a
    node_modules restored for this very package.json and lockfile (a build's `npm ci` made it)
    the detected `npm ci` becomes `npm install`, which checks the tree against the lockfile and
    changes nothing; and when the package has no install scripts of its own (npm runs those
    even then) and npm's record of that tree came back with it, nothing runs at all."""
    chosen = build.spec.install_command or build.config.install_command
    if restored is Restored.NO_NODE_MODULES or chosen is not None or install != ("npm", "ci"):
        return install
    if restored is Restored.INSTALLED:
        build.log.line(
            "Build cache: node_modules is npm's own for this lockfile and package.json has no "
            "install scripts: nothing to install"
        )
        return None
    build.log.line("Build cache: node_modules matches the lockfile: npm install checks it")
    return ("npm", "install")


def _npm_made(checkout: Path, directory: Path) -> bool:
    """node_modules holds npm's own record of the tree it installed (npm 7 and later)."""
    try:
        return repo_files.regular_file(checkout, directory / HIDDEN_LOCKFILE) is not None
    except (repo_files.RepoFileError, OSError):
        return False


def save(build: Build, plan: Plan) -> None:
    """Archive this build's caches to its branch's key; a failure is a warning only."""
    spec, say = build.spec, build.log.line
    storage = build.storage
    if not isinstance(storage, CacheStorage):
        return
    if spec.from_fork:
        say("Build cache: not saved (a fork's pull request never writes the project's cache)")
        return
    if not spec.branch:
        say("Build cache: not saved (a tag or commit has no branch to keep it for)")
        return
    try:
        # Nothing of the build may run (and swap files) while its caches are read.
        build.confinement.stop_all()
    except ConfinementError as exc:
        say(f"Warning: build cache not saved: {exc}")
        return
    trees = _trees(build, plan)
    if not any(
        _is_directory(root / path) for paths in trees.values() for path, root in paths.items()
    ):
        say("Build cache: nothing to save (no dependencies or framework caches)")
        return
    started = time.monotonic()
    key = cache_key(spec.project_id, spec.branch, spec.cache_generation)
    lock = build.lockfile
    target = build.scratch / "cache-out.tar.zst"
    carry = build.scratch / CARRY
    cap = spec.limits.cache_mb << 20
    meta = {"format": FORMAT, "lockfile": lock, "branch": spec.branch, "sha": spec.sha}
    try:
        size = write_archive(
            target, meta, trees, cap=cap, owner=build.checkout.stat().st_uid,
            carry=carry if carry.is_file() else None, carry_roots=("home",),
        )  # fmt: skip
    except ArchiveTooLarge:
        target.unlink(missing_ok=True)
        say(
            f"Build cache: not saved: it is larger than {spec.limits.cache_mb} MB "
            "(SCALEMESH_BUILD_CACHE_MB)"
        )
        return
    except (OSError, ArchiveError) as exc:
        target.unlink(missing_ok=True)
        say(f"Warning: build cache not saved: {exc}")
        return
    finally:
        carry.unlink(missing_ok=True)
    try:
        storage.put(key, target, Headers(_CONTENT_TYPE, "no-store")).result()
    except StorageError as exc:
        say(f"Warning: build cache not saved: {exc}")
        return
    finally:
        target.unlink(missing_ok=True)
    say(
        f"Build cache: saved {key}, {size_text(size)}; lockfile key {_short(lock)}; "
        f"in {time.monotonic() - started:.1f} s"
    )


def _trees(build: Build, plan: Plan) -> dict[str, dict[str, Path]]:
    checkout = build.checkout.resolve()
    root = Path(os.path.relpath(plan.root, checkout))
    paths = [root / name for name in (*FRAMEWORK_CACHES, *build.config.cache)]
    for directory in {plan.root, plan.install_dir}:
        paths.append(Path(os.path.relpath(directory, checkout)) / "node_modules")
    # The checkout's trees first: a restore that needs only them stops before the rest.
    return {
        "repo": {path.as_posix(): checkout for path in sorted(set(paths))},
        "home": dict.fromkeys(HOME_CACHES, build.home),
    }


def _is_directory(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def lockfile_key(
    plan: Plan, toolchain: str = "", env: Mapping[str, str] | None = None
) -> str | None:
    """The hash of the machine, the toolchain (`toolchain`: the build's PATH, which names the
    Node or bun version chosen for it), the package manager, its lockfile and the package.json
    files beside it and in the root directory, their `.npmrc` files, and the settings of `env`
    (the build's variables) that shape the installed tree (`install_settings`); None: no
    lockfile (or one of those files is not a plain file), so node_modules is never restored.
    Native addons are built for one Node: a node_modules built under another must not come
    back."""
    if plan.lockfile is None or plan.package_manager is None:
        return None
    head = f"{platform.machine()}\0{toolchain}\0{plan.package_manager}\0"
    digest = hashlib.sha256(head.encode())
    files = [plan.install_dir / plan.lockfile, plan.install_dir / PACKAGE, plan.root / PACKAGE]
    for directory in dict.fromkeys((plan.install_dir, plan.root)):
        files += [directory / name for name in CONFIG_FILES]
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            if path.name in CONFIG_FILES:
                digest.update(b"-\0")  # none: the defaults (a file's length is a number)
                continue
            return None
        except OSError:
            return None
        # Checked on the descriptor, before fdopen: that raises for a directory's.
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode) or found.st_size > MAX_LOCKFILE:
            os.close(fd)
            return None
        digest.update(f"{found.st_size}\0".encode())
        with os.fdopen(fd, "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    for name, value in tree_settings(env or {}):
        digest.update(f"{name}={value}\0".encode())
    return digest.hexdigest()


def _short(lock: str | None) -> str:
    return "none (no lockfile)" if lock is None else lock[:16]
