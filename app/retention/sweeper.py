"""The storage sweeper: delete what no live row references under `__outputs/` and `__logs/` (a
crashed build's upload, a deleted project's files, a pruned deployment's leftovers) and under
`__cache/` (a deleted project's build caches).

Keys are walked in order from a cursor, `batch` orphans at a time (S3 deletes 1,000 keys a call),
so a run is bounded and the next goes on where it stopped. A deployment's key is live while a
row with its deployment id (and, under `__outputs/<project>/`, that project) has not been
pruned; a build cache under `__cache/<project>/` while that project exists and, under
`__cache/<project>/<generation>/`, was made in that project's life (a deleted project whose id
SQLite gave to a new one left them; a deleted branch's cache goes with its previews:
`app.retention.teardown`). Anything else is never touched. With
`dry_run`, nothing is deleted: the orphans are named, by prefix.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from app.projects.records import generation
from app.storage import Storage
from app.tables import Deployment, Project
from builder.cache_keys import CACHE_ROOT
from builder.spec import LOGS_ROOT, OUTPUTS_ROOT

ROOTS = (f"{CACHE_ROOT}/", f"{LOGS_ROOT}/", f"{OUTPUTS_ROOT}/")
"""In key order, so a page walked root by root is too."""
BATCH = 1000
SCAN_PAGES = 5
"""Keys listed per run, in batches: a run over live files only still ends soon."""
LOG_SUFFIX = ".ndjson"
MAX_PROJECT_ID = 2**31 - 1
"""Project ids are 32-bit serials: a larger number names no project (and no query may ask)."""


@dataclass(frozen=True, slots=True)
class Sweep:
    """What one run found: the orphan keys (deleted unless a dry run), how many keys it looked
    at, and where the next run goes on ("": it reached the end)."""

    orphans: tuple[str, ...]
    examined: int
    cursor: str
    orphan_prefixes: tuple[str, ...] = field(default=())


def owner(key: str) -> tuple[int | None, str] | None:
    """(project id or None for a log, deployment id) a key belongs to; None: no deployment's."""
    parts = key.split("/")
    if parts[0] == LOGS_ROOT and len(parts) == 2 and parts[1].endswith(LOG_SUFFIX):
        return None, parts[1].removesuffix(LOG_SUFFIX)
    if parts[0] == OUTPUTS_ROOT and len(parts) >= 3 and _is_number(parts[1]):
        return int(parts[1]), parts[2]
    return None


def cache_owner(key: str) -> int | None:
    """The project a build cache key belongs to; None: no build cache key."""
    parts = key.split("/")
    if parts[0] == CACHE_ROOT and len(parts) >= 3 and _is_number(parts[1]):
        return int(parts[1])
    return None


def _is_number(text: str) -> bool:
    # ASCII only: `"²".isdigit()` holds, yet `int("²")` fails.
    return text.isascii() and text.isdigit()


async def _live_projects(ids: set[int]) -> dict[int, str]:
    """Each of `ids` that is a project, with its build caches' generation."""
    asked = sorted(project for project in ids if project <= MAX_PROJECT_ID)
    if not asked:
        return {}
    rows = await Project.select(Project._meta.primary_key.as_alias("id"), Project.created_at).where(
        Project._meta.primary_key.is_in(asked)
    )
    return {int(row["id"]): generation(row["created_at"]) for row in rows}


def _orphan(key: str, live: set[tuple[int | None, str]], projects: dict[int, str]) -> bool:
    found = owner(key)
    if found is not None:
        return found not in live
    project = cache_owner(key)
    if project is None:
        return False
    if project not in projects:
        return True
    parts = key.split("/")
    # `__cache/<project>/<generation>/<key>`: another generation is a deleted project's.
    return len(parts) == 4 and parts[2] != projects[project]


async def _live(owners: set[tuple[int | None, str]]) -> set[tuple[int | None, str]]:
    ids = _uuids(sorted({deployment for _, deployment in owners}))
    live: set[tuple[int | None, str]] = set()
    for start in range(0, len(ids), 500):
        rows = await Deployment.select(
            Deployment._meta.primary_key.as_alias("id"), Deployment.project
        ).where(
            Deployment._meta.primary_key.is_in(ids[start : start + 500])
            & Deployment.pruned_at.is_null()
        )
        for row in rows:
            live |= {(None, str(row["id"])), (int(row["project"]), str(row["id"]))}
    return live


def _uuids(ids: list[str]) -> list[str]:
    """Only well-formed UUIDs reach the query (PostgreSQL refuses others; they are orphans)."""
    out = []
    for text in ids:
        try:
            out.append(str(uuid.UUID(text)))
        except ValueError:
            continue
    return out


async def sweep(
    storage: Storage, cursor: str = "", *, batch: int = BATCH, dry_run: bool = False
) -> Sweep:
    """One run from `cursor` (see the module docstring): at most `SCAN_PAGES` pages of `batch`
    keys listed, at most `batch` deleted."""
    orphans: list[str] = []
    examined = 0
    position = cursor
    for _ in range(SCAN_PAGES):
        page = await _page(storage, position, batch)
        live = await _live({found for key in page if (found := owner(key)) is not None})
        projects = await _live_projects(
            {project for key in page if (project := cache_owner(key)) is not None}
        )
        for key in page:
            examined += 1
            position = key
            if _orphan(key, live, projects):
                orphans.append(key)
                if len(orphans) >= batch:
                    break
        if len(orphans) >= batch:
            break
        if len(page) < batch:
            position = ""  # the end: the next run starts over
            break
    if orphans and not dry_run:
        await storage.delete(*orphans)
    prefixes = sorted({_prefix(key) for key in orphans})
    return Sweep(tuple(orphans), examined, position, tuple(prefixes))


async def _page(storage: Storage, after: str, size: int) -> list[str]:
    """The next `size` keys under the roots after `after`, in order."""
    keys: list[str] = []
    for root in ROOTS:
        if len(keys) < size:
            keys += await storage.list(root, start_after=after, limit=size - len(keys))
    return keys


def _prefix(key: str) -> str:
    """What the operator is shown: a deployment's files, a project's caches, or the key."""
    parts = key.split("/")
    if parts[0] == OUTPUTS_ROOT:
        return "/".join(parts[:3]) + "/"
    if parts[0] == CACHE_ROOT:
        return "/".join(parts[: 3 if len(parts) == 4 else 2]) + "/"
    return key
