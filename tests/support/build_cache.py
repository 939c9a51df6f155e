"""The build cache tests' building blocks: a tiny npm site (one dependency, from the registry),
builds of it one after another against one storage, and what a stored cache archive holds."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import zstandard

from builder.cache_archive import FORMAT, META
from builder.cache_keys import cache_key
from builder.spec import BuildSpec
from tests.support.builder import PROJECT_ID, SITES, CapturingSink, make_repo, make_spec, run
from tests.support.git import git

SITE = SITES / "cache-npm"


def everything(meta: Mapping[str, Any]) -> Callable[[str], bool]:
    """An extraction chooser that takes every member."""
    return lambda name: True


def cache_site(tmp_path: Path) -> tuple[Path, str]:
    """The site committed on `main`, with is-number 7.0.0 locked."""
    repo = tmp_path / "repo"
    shutil.copytree(SITE, repo, ignore=shutil.ignore_patterns("locks"))
    return make_repo(repo)


def lock_is_number_6(repo: Path) -> str:
    """Commit the lockfile of is-number 6.0.0; return the new sha."""
    shutil.copy(SITE / "locks" / "package-6.json", repo / "package.json")
    shutil.copy(SITE / "locks" / "package-lock-6.json", repo / "package-lock.json")
    git(repo, "commit", "-q", "-am", "is-number 6")
    return git(repo, "rev-parse", "HEAD")


def spec_of(tmp_path: Path, repo: Path, sha: str, number: int, **overrides: Any) -> BuildSpec:
    values: dict[str, Any] = {
        "branch": "main",
        "production_branch": "main",
        "timeout": 240,
        "deployment_id": f"dpl-{number}",
        "env": {"npm_config_audit": "false", "npm_config_fund": "false"},
    }
    return make_spec(repo, sha, tmp_path / "storage", **(values | overrides))


def build(spec: BuildSpec) -> tuple[bool, CapturingSink]:
    return run(spec)


def cache_lines(sink: CapturingSink) -> list[str]:
    return [line for line in sink.lines() if "uild cache" in line]


def stored(tmp_path: Path, branch: str) -> Path:
    return tmp_path / "storage" / cache_key(PROJECT_ID, branch)


def served(tmp_path: Path, number: int) -> str:
    page = tmp_path / "storage" / "__outputs" / str(PROJECT_ID) / f"dpl-{number}" / "index.html"
    return page.read_text()


def members(archive: Path) -> dict[str, Any]:
    """The archive's meta, and the names of its members."""
    with archive.open("rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            names: list[str] = []
            meta: dict[str, Any] = {}
            for member in tar:
                if not names and member.isreg():
                    stream = tar.extractfile(member)
                    assert stream is not None
                    meta = json.loads(stream.read())
                names.append(member.name)
    return {"meta": meta, "names": names}


Member = tuple[str, str, bytes | str]
"""(kind, name, content or link target); kinds: file, dir, symlink, hardlink, char, fifo."""


def archive(path: Path, members: list[Member], meta: Mapping[str, Any] | None = None) -> Path:
    """A .tar.zst with our meta first (unless `meta` is {}), then `members`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if meta != {}:
            text = json.dumps(meta or {"format": FORMAT, "lockfile": "abc"}).encode()
            info = tarfile.TarInfo(META)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
        for kind, name, content in members:
            info = tarfile.TarInfo(name)
            data = content if isinstance(content, bytes) else b""
            info.type = {
                "file": tarfile.REGTYPE,
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "char": tarfile.CHRTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            info.mode = 0o4755 if kind == "file" else 0o755
            if isinstance(content, str):
                info.linkname = content
            info.size = len(data) if kind == "file" else 0
            tar.addfile(info, io.BytesIO(data) if kind == "file" else None)
    path.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    return path
