"""Per-PR time to live: previews idle (no push) longer than their time to live are retired and
due for teardown at once.

The time to live is the project's `preview_ttl_days`, else the `previews.ttlDays` the newest
build of that pull request (or branch) read from `scalemesh.json` (its `config` column). Idle
counts from that newest deployment's `created_at`: a push makes a new one. Pushing again brings
a torn-down preview back (a new build).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from app.deployments.lifecycle import Target
from app.deployments.transitions import report_again
from app.tables import Deployment


def ttl_days(config: Any) -> int | None:
    """`previews.ttlDays` of a stored build config (`app.deployments.build_config`), if set."""
    try:
        loaded = json.loads(config) if isinstance(config, str) else config
        days = loaded["fields"]["previews"]["value"]["ttlDays"]
    except (TypeError, KeyError, ValueError):
        return None
    return days if isinstance(days, int) and not isinstance(days, bool) and days > 0 else None


async def retire_idle(now: datetime, batch: int) -> int:
    """Mark up to `batch` idle previews' deployments due for teardown; return how many."""
    live = (
        (Deployment.target == Target.PREVIEW)
        & (Deployment.retired == False)  # noqa: E712 - SQL, not Python
        & Deployment.pruned_at.is_null()
    )
    rows = await (
        Deployment.select(
            Deployment._meta.primary_key.as_alias("id"),
            Deployment.project,
            Deployment.branch,
            Deployment.pr_number,
            Deployment.created_at,
            Deployment.config,
            Deployment.project.preview_ttl_days.as_alias("project_ttl"),
        )
        .where(live)
        .order_by(Deployment.created_at, ascending=False)
    )
    newest: dict[tuple[Any, ...], dict[str, Any]] = {}
    members: dict[tuple[Any, ...], list[str]] = {}
    for row in rows:
        key = (row["project"], row["pr_number"] if row["pr_number"] is not None else row["branch"])
        newest.setdefault(key, row)
        members.setdefault(key, []).append(str(row["id"]))
    idle: list[str] = []
    for key, row in newest.items():
        days = row["project_ttl"] or ttl_days(row["config"])
        if days is not None and row["created_at"] < now - timedelta(days=days):
            idle += members[key]
        if len(idle) >= batch:
            break
    if not idle:
        return 0
    updated = await (
        Deployment.update({Deployment.retired: True, Deployment.teardown_at: now, **report_again()})
        .where(Deployment._meta.primary_key.is_in(idle) & live)
        .returning(Deployment._meta.primary_key)
    )
    return len(updated)
