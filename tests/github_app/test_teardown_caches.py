"""A deleted branch's build cache goes when its previews are torn down (after
`SCALEMESH_PREVIEW_TTL_AFTER_CLOSE`), through the real webhook and the retention pass; the
production branch's and a live branch's caches stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from builder.cache_keys import cache_key
from tests.support.deployments import tick
from tests.support.github_app import App, delete_event, retention_at
from tests.support.webhooks import payload


def push(branch: str, sha: str) -> dict[str, Any]:
    body = payload("push.commits")
    body["ref"] = f"refs/heads/{branch}"
    body["after"] = sha
    return body


def caches(app: App, project_id: int) -> list[str]:
    storage = app.services.reconciler.storage
    found: list[str] = app.client.run(lambda: storage.list(f"__cache/{project_id}/"))
    return sorted(found)


def test_a_deleted_branchs_cache_goes_with_its_previews(app: App, token: str) -> None:
    app.deliver("push", push("feature", "1" * 40))
    app.deliver("push", push("other", "2" * 40))
    tick(app.client)
    feature, other = app.deployments()
    app.build(str(feature["id"]))
    app.build(str(other["id"]))
    project_id = int(feature["project"])
    generation = app.runner.spec_of(str(feature["id"])).cache_generation
    assert generation.isdigit()
    storage = app.services.reconciler.storage
    keys = {
        branch: cache_key(project_id, branch, generation) for branch in ("main", "feature", "other")
    }
    for key in keys.values():
        app.client.run(lambda key=key: storage.put(key, b"cache"))

    app.deliver("delete", delete_event("feature"))
    now = datetime.now(UTC)
    app.client.run(retention_at(app, now + timedelta(days=6)).run)
    assert caches(app, project_id) == sorted(keys.values())  # not due yet

    app.client.run(retention_at(app, now + timedelta(days=7, minutes=2)).run)

    pruned = {row["branch"]: row["pruned_at"] for row in app.deployments()}
    assert pruned["feature"] is not None
    assert pruned["other"] is None
    assert caches(app, project_id) == sorted([keys["main"], keys["other"]])
