"""Where build caches live in storage: `__cache/<project>/<generation>/<branch hash>.tar.zst`.

Standard library only: the builder (`builder.build_cache`) reads and writes these keys, and the
app names them too (the upload grant's session policy, the teardown of a branch's previews, the
storage sweeper, a project's deletion) without importing the builder's cache machinery.
"""

from __future__ import annotations

import hashlib

CACHE_ROOT = "__cache"


def cache_prefix(project_id: int, generation: str = "") -> str:
    """Where a project's build caches live in storage (those of its `generation` with one),
    ending with a slash."""
    return f"{CACHE_ROOT}/{project_id}/" + (f"{generation}/" if generation else "")


def cache_key(project_id: int, branch: str, generation: str = "") -> str:
    """A branch's build cache; the name is hashed, so any branch name makes one safe key. It is
    kept under the project's `generation` (`BuildSpec.cache_generation`, from
    `app.projects.records.generation`): a project given a deleted one's id never reads the
    deleted one's caches."""
    name = hashlib.sha256(branch.encode()).hexdigest()[:32]
    return f"{cache_prefix(project_id, generation)}{name}.tar.zst"
