"""What deleting a project takes besides its own row: its build caches, first; its deployments
and their aliases, in batches."""

from __future__ import annotations

from typing import Any

from app.errors import ErrorCode, UserError
from app.storage import Storage, StorageError
from app.tables import Alias, Deployment
from builder.cache_keys import cache_prefix

DELETE_BATCH = 1000
"""Deployment rows deleted per statement when a project goes: no giant transaction."""


async def delete_build_caches(storage: Storage, project_id: int) -> None:
    """Delete the project's build caches (a few keys: one per branch), before its rows.

    They hold its dependencies (private packages too) and its frameworks' caches, and nothing
    else ever deletes them: the storage sweeper leaves `__cache/` alone, and the next project
    SQLite gives this id to keeps its own (`BuildSpec.cache_generation`). So unlike its other
    files, they go first, or the project stays."""
    try:
        await storage.delete(*await storage.list(cache_prefix(project_id)))
    except StorageError as exc:
        raise UserError(
            ErrorCode.STORAGE_UNAVAILABLE,
            "Storage did not answer while deleting the project's build caches; nothing was "
            "deleted. Try again shortly.",
        ) from exc


async def delete_deployments(project_id: int) -> list[Any]:
    """Delete a project's deployments (and their aliases), `DELETE_BATCH` rows a statement;
    return their ids."""
    ids: list[Any] = await (
        Deployment.select(Deployment._meta.primary_key)
        .where(Deployment.project == project_id)
        .output(as_list=True)
    )
    await Alias.delete().where(Alias.project == project_id)
    for start in range(0, len(ids), DELETE_BATCH):
        await Deployment.delete().where(
            Deployment._meta.primary_key.is_in(ids[start : start + DELETE_BATCH])
        )
    return ids
