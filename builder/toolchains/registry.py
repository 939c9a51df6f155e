"""Packages from the npm registry, checked against its sha512 and kept in the toolchain cache.

The builder itself downloads (trusted, outside the build's confinement). The cache is the
builder's: builds see it read-only (a read-only mount in the sandbox, another owner on ECS).
A package is unpacked in a temporary directory beside its place and renamed into it, so a
directory in the cache is always whole, and two builds fetching the same version at once
both end with one good copy.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit

from builder.errors import BuildError

REGISTRY = "https://registry.npmjs.org"
MAX_DOCUMENT = 64 << 20
"""A package's metadata larger than this is refused."""
MAX_TARBALL = 256 << 20
MAX_UNPACKED = 1 << 30
"""Bytes a package may unpack to (Node's binary alone is about 120 MB)."""
TIMEOUT = 60
"""Seconds each read from the registry may wait."""
MARKER = ".scalemesh-package.json"
"""In each cached package: what it is and the integrity it was checked against."""
STALE = 24 * 3600
"""Seconds after which a temporary directory left by a killed builder is removed."""
_CHUNK = 1 << 20
_ABBREVIATED = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8"

Opener = Callable[[urllib.request.Request], IO[bytes]]


def _urlopen(request: urllib.request.Request) -> IO[bytes]:
    response: IO[bytes] = urllib.request.urlopen(request, timeout=TIMEOUT)  # noqa: S310 - https URLs of the registry only (checked in Registry)
    return response


@dataclass(frozen=True, slots=True)
class Dist:
    """Where a package version's tarball is and what it must hash to."""

    tarball: str
    integrity: str
    """`sha512-<base64>` as the registry publishes it."""


class Registry:
    """The npm registry at `url`; `opener` fetches (a test's fake, or urllib)."""

    def __init__(self, url: str = REGISTRY, opener: Opener = _urlopen) -> None:
        self.url = url.rstrip("/")
        self._origin = urlsplit(self.url)[:2]
        self._open = opener

    def document(self, name: str) -> dict[str, Any]:
        """A package's metadata (the abbreviated form npm install reads)."""
        data = self._get(f"{self.url}/{quote(name, safe='@')}", MAX_DOCUMENT, _ABBREVIATED)
        try:
            document = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BuildError(f"the npm registry sent unreadable metadata for {name}") from None
        if not isinstance(document, dict) or not isinstance(document.get("versions"), dict):
            raise BuildError(f"the npm registry sent no versions for {name}")
        return document

    def dist(self, document: Mapping[str, Any], version: str) -> Dist:
        name = document.get("name", "the package")
        entry = document["versions"].get(version)
        dist = entry.get("dist") if isinstance(entry, dict) else None
        tarball = dist.get("tarball") if isinstance(dist, dict) else None
        integrity = dist.get("integrity") if isinstance(dist, dict) else None
        if not isinstance(tarball, str) or not isinstance(integrity, str):
            raise BuildError(f"the npm registry has no tarball for {name}@{version}")
        if urlsplit(tarball)[:2] != self._origin:
            raise BuildError(f"{name}@{version}'s tarball is not on {self.url}")
        return Dist(tarball, integrity)

    def _get(self, url: str, limit: int, accept: str = "*/*") -> bytes:
        request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 - see _urlopen
        try:
            with self._open(request) as response:
                data = response.read(limit + 1)
        except urllib.error.HTTPError as exc:
            raise BuildError(f"the npm registry answered {exc.code} for {url}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BuildError(f"could not reach the npm registry ({reason}) for {url}") from None
        if len(data) > limit:
            raise BuildError(f"{url} is larger than {limit >> 20} MB")
        return data

    def install(self, cache: Path, place: str, dist: Dist, program: str) -> Path:
        """The package of `dist` unpacked at `cache/place`, fetched unless it is there already.

        `program` (`bin/node`) must be in it. Returns the package's directory."""
        final = cache / place
        if installed(cache, place) is not None:
            return final
        expected = _sha512(dist.integrity)
        data = self._get(dist.tarball, MAX_TARBALL)
        if hashlib.sha512(data).digest() != expected:
            raise BuildError(
                f"{dist.tarball} does not match the registry's sha512 integrity; not used"
            )
        temporary = _temporary(cache)
        try:
            unpacked = _unpack(data, temporary, dist.tarball)
            if not (unpacked / program).is_file():
                raise BuildError(f"{dist.tarball} has no {program}")
            (unpacked / MARKER).write_text(
                json.dumps({"tarball": dist.tarball, "integrity": dist.integrity})
            )
            _readable(unpacked)
            final.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            try:
                os.rename(unpacked, final)
            except OSError:
                # Another build put it there first (or a broken copy is in the way): theirs wins
                # if it is whole.
                if installed(cache, place) is None:
                    raise BuildError(f"could not put {place} into the toolchain cache") from None
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        return final


def installed(cache: Path, place: str) -> Path | None:
    """The package at `cache/place` when it is there (renamed into place whole, marker and all)."""
    final = cache / place
    return final if (final / MARKER).is_file() else None


def _sha512(integrity: str) -> bytes:
    """The sha512 digest of an SRI string (`sha512-...`, maybe among other hashes)."""
    for token in integrity.split():
        algorithm, _, value = token.partition("-")
        if algorithm == "sha512":
            try:
                digest = base64.b64decode(value, validate=True)
            except ValueError:
                break
            if len(digest) == hashlib.sha512().digest_size:
                return digest
            break
    raise BuildError(f"the npm registry gave no usable sha512 integrity ({integrity[:40]!r})")


def _temporary(cache: Path) -> Path:
    """A new directory in `cache/.tmp`, after removing what killed builders left there."""
    parent = cache / ".tmp"
    parent.mkdir(mode=0o700, exist_ok=True)
    now = time.time()
    for entry in parent.iterdir():
        try:
            if now - entry.lstat().st_mtime > STALE:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:  # pragma: no cover - removed by a concurrent build meanwhile
            continue
    return Path(tempfile.mkdtemp(dir=parent))


def _unpack(data: bytes, into: Path, label: str) -> Path:
    """The tarball's `package/` directory, unpacked into `into` (files and directories only)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            members = archive.getmembers()
            total = sum(member.size for member in members)
            if total > MAX_UNPACKED:
                raise BuildError(f"{label} unpacks to more than {MAX_UNPACKED >> 20} MB")
            wanted = [
                member
                for member in members
                if (member.isfile() or member.isdir()) and member.name.split("/", 1)[0] == "package"
            ]
            # "data": no absolute paths, no `..`, no special files or set-uid bits.
            archive.extractall(into, members=wanted, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BuildError(f"{label} could not be unpacked ({exc})") from None
    return into / "package"


def _readable(top: Path) -> None:
    """Everything under `top` readable (and directories searchable) by every user, writable by
    the builder alone: builds run as other users."""
    for root, _, files in os.walk(top):
        os.chmod(root, 0o755)  # noqa: S103 - builds (other users) must read the toolchain
        for name in files:
            path = os.path.join(root, name)
            executable = os.lstat(path).st_mode & stat.S_IXUSR
            os.chmod(path, 0o755 if executable else 0o644)


def cache_root(path: Path) -> Path:
    """The toolchain cache at `path`, made if missing; readable by builds, writable by us only."""
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise BuildError(f"the toolchain cache {path} must be ours and writable by us alone")
    if info.st_mode & 0o005 != 0o005:
        path.chmod(0o755)
    return path
