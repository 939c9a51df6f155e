"""A deployment's diff against production: which deployment production's label points at, its
manifest and this one's read from storage (two reads, nothing else), compared by
`app.deployments.diff`, and the result remembered per (deployment, production) pair.

Manifests never change once written, so a pair's diff never does: the PR comment, rewritten
at every report, and the page ask again without reading storage again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

from app import hostnames
from app.deployments.diff import ManifestDiff, ManifestError, diff
from app.deployments.lifecycle import DeploymentState
from app.deployments.manifests import MAX_MANIFEST_BYTES, ManifestTooLarge, read_manifest
from app.deployments.views import DeploymentView
from app.errors import ErrorCode, UserError
from app.storage import ObjectNotFound, Storage, StorageError
from app.tables import Alias
from builder.spec import output_prefix

REMEMBERED = 256
"""Diffs kept in memory (each a few kB: counts and at most ~70 names)."""


@dataclass(frozen=True, slots=True)
class ProductionDiff:
    """A deployment's diff against the one production served when it was computed."""

    deployment_id: str
    production_id: str
    diff: ManifestDiff


class ProductionDiffs:
    """Diffs of deployments against their project's production deployment."""

    def __init__(self, storage: Storage, *, remembered: int = REMEMBERED) -> None:
        self.storage = storage
        self.remembered = remembered
        self._known: OrderedDict[tuple[str, str], ManifestDiff] = OrderedDict()

    async def against_production(self, view: DeploymentView) -> ProductionDiff:
        """The diff of `view` (whose access the caller checked) against production, or a
        `UserError`: not ready, no production, a manifest gone or unreadable, storage down."""
        if view.state is not DeploymentState.READY:
            raise UserError(
                ErrorCode.DIFF_NOT_READY,
                f"This deployment is {view.state}; only a ready deployment has files to compare.",
            )
        production = await _production_of(view.slug, view.project_id)
        if production is None:
            raise UserError(
                ErrorCode.DIFF_NO_PRODUCTION,
                f"Project {view.slug!r} has no production deployment to compare with yet.",
            )
        key = (view.id, production)
        found = self._known.get(key)
        if found is None:
            found = await self._compute(view, production)
            self._known[key] = found
            while len(self._known) > self.remembered:
                self._known.popitem(last=False)
        self._known.move_to_end(key)
        return ProductionDiff(view.id, production, found)

    async def _compute(self, view: DeploymentView, production: str) -> ManifestDiff:
        after = await self._manifest(view.project_id, view.id, "this deployment's")
        before = (
            after  # production itself: one read, nothing changed
            if production == view.id
            else await self._manifest(view.project_id, production, "production's")
        )
        try:
            # Off the event loop: a hostile manifest may list hundreds of thousands of files.
            return await asyncio.to_thread(diff, before, after)
        except ManifestError as exc:
            raise UserError(
                ErrorCode.DIFF_MANIFEST_UNREADABLE, f"A manifest cannot be compared: {exc}."
            ) from None

    async def _manifest(self, project_id: int, deployment_id: str, whose: str) -> bytes:
        """The manifest's bytes (`app.deployments.manifests`), its troubles as `diff_*` refusals."""
        try:
            return await read_manifest(self.storage, output_prefix(project_id, deployment_id))
        except ObjectNotFound:
            raise UserError(
                ErrorCode.DIFF_MANIFEST_GONE,
                f"{whose.capitalize()} files are gone from storage (deployment {deployment_id}); "
                "there is nothing to compare.",
            ) from None
        except StorageError as exc:
            raise UserError(
                ErrorCode.DIFF_STORAGE_UNAVAILABLE,
                f"Storage did not answer while reading {whose} manifest; try again shortly.",
            ) from exc
        except ManifestTooLarge:
            raise UserError(
                ErrorCode.DIFF_MANIFEST_UNREADABLE,
                f"{whose.capitalize()} manifest is larger than {MAX_MANIFEST_BYTES >> 20} MiB.",
            ) from None


async def _production_of(slug: str, project_id: int) -> str | None:
    """The deployment production's label points at now, if any."""
    row = await (
        Alias.select(Alias.deployment)
        .where((Alias.hostname == hostnames.production_label(slug)) & (Alias.project == project_id))
        .first()
    )
    return None if row is None else str(row["deployment"])
