"""Tearing deployments down: what closing a pull request, deleting a branch, an idle preview's
time to live and the retention policy all end in.

`prune` removes every alias pointing at the deployments except each one's own label (so its URL
answers 410 Gone, not 404), tells the proxies, deletes their files and archived logs from
storage, and stamps `pruned_at`, `retired` and a new report (GitHub's Deployment becomes
`inactive` through `app.reporting`; the PR comment says the preview was removed). Storage goes
before the stamp: when it fails, `StorageError` propagates and the rows are tried again later.

A branch whose every deployment is retired (deleted, its pull requests closed, idle) loses its
build cache with them (`builder.cache_keys`): nothing builds that branch any more, and a
branch pushed again starts from its base branch's or the production branch's cache, as a new
one does. The production branch's cache is never deleted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app import hostnames
from app.aliases import AliasAnnouncer
from app.deployments.transitions import report_again
from app.logs.archive import archive_key
from app.projects.records import generation
from app.storage import Storage
from app.tables import Alias, Deployment
from builder.cache_keys import cache_key
from builder.spec import output_prefix


@dataclass(frozen=True, slots=True)
class Doomed:
    """A deployment about to be pruned: what finding its files and own label takes."""

    id: str
    project_id: int
    slug: str
    branch: str | None = None
    """Its branch; None for a fork's pull request (whose branch is the fork's) or a tag."""
    production_branch: str = ""
    project_created: datetime | None = None
    """When its project was made: the generation its build caches are kept under."""

    COLUMNS = (
        Deployment._meta.primary_key.as_alias("id"),
        Deployment.project.as_alias("project_id"),
        Deployment.project.slug.as_alias("slug"),
        Deployment.branch,
        Deployment.project.production_branch.as_alias("production_branch"),
        Deployment.project.created_at.as_alias("project_created"),
    )

    @classmethod
    def of(cls, row: dict[str, Any]) -> Doomed:
        return cls(
            str(row["id"]),
            int(row["project_id"]),
            str(row["slug"]),
            row["branch"],
            str(row["production_branch"]),
            row["project_created"],
        )

    @property
    def generation(self) -> str:
        """Its project's build cache generation ("": unknown, the keys of before generations)."""
        created = self.project_created
        return "" if created is None else generation(created)

    @property
    def label(self) -> str:
        return hostnames.deployment_label(self.slug, self.id)


async def prune(
    storage: Storage, announce: AliasAnnouncer, doomed: Sequence[Doomed], now: datetime
) -> int:
    """Tear `doomed` down (see the module docstring); return how many were pruned."""
    if not doomed:
        return 0
    ids = [deployment.id for deployment in doomed]
    own = {deployment.label for deployment in doomed}
    pointing: list[str] = await (
        Alias.select(Alias.hostname).where(Alias.deployment.is_in(ids)).output(as_list=True)
    )
    moved = [name for name in pointing if name not in own]
    if moved:
        await Alias.delete().where(Alias.deployment.is_in(ids) & Alias.hostname.is_in(moved))
        await announce(moved)
    for deployment in doomed:
        await storage.delete_prefix(output_prefix(deployment.project_id, deployment.id))
    await storage.delete(*(archive_key(deployment_id) for deployment_id in ids))
    caches = await abandoned_caches(doomed)
    if caches:
        await storage.delete(*caches)
    rows = await (
        Deployment.update(
            {
                Deployment.pruned_at: now,
                Deployment.teardown_at: None,
                Deployment.retired: True,
                **report_again(),
            }
        )
        .where(Deployment._meta.primary_key.is_in(ids) & Deployment.pruned_at.is_null())
        .returning(Deployment._meta.primary_key)
    )
    # The own labels now serve a pruned deployment: proxies that cached them must look again.
    await announce(sorted(own))
    return len(rows)


async def abandoned_caches(doomed: Sequence[Doomed]) -> list[str]:
    """The build cache keys of the branches among `doomed` that no deployment builds any more
    (each one retired), never a production branch's."""
    branches = {
        (deployment.project_id, deployment.branch): deployment.generation
        for deployment in doomed
        if deployment.branch and deployment.branch != deployment.production_branch
    }
    if not branches:
        return []
    rows = await Deployment.select(Deployment.project, Deployment.branch).where(
        Deployment.project.is_in(sorted({project for project, _ in branches}))
        & Deployment.branch.is_in(sorted({branch for _, branch in branches}))
        & (Deployment.retired == False)  # noqa: E712 - SQL, not Python
    )
    alive = {(int(row["project"]), str(row["branch"])) for row in rows}
    return [
        cache_key(project, branch, branches[project, branch])
        for project, branch in sorted(branches.keys() - alive)
    ]
