"""The PR comment says what changed: a push builds production, a pull request builds a preview,
and the comment GitHub holds gets each project's diff against production, in a `<details>`."""

from __future__ import annotations

import json
from typing import Any

from app.tables import Deployment
from builder.spec import MANIFEST
from tests.support.api import bearer
from tests.support.binding import bind
from tests.support.counting_storage import CountingStorage
from tests.support.deployments import RunStatus, tick
from tests.support.github_app import App, pr_event
from tests.support.webhooks import REPO, REPO_ID, payload

HTML = "text/html; charset=utf-8"


def record(
    size: int, sha: str, br: int | None = None, content_type: str = "text/javascript"
) -> Any:
    return {
        "size": size,
        "sha256": sha * 64,
        "content_type": content_type,
        "cache_control": "public, max-age=0, must-revalidate",
        "encodings": [] if br is None else ["br", "gzip"],
        "br_size": size if br is None else br,
    }


PRODUCTION = {
    "index.html": record(3000, "a", 1000, HTML),
    "assets/index-1.js": record(150_000, "b", 45_000),
    "pricing/index.html": record(2500, "c", 800, HTML),
}
PREVIEW = {
    "index.html": record(3100, "d", 1030, HTML),
    "assets/index-2.js": record(180_000, "e", 52_000),
    "blog/index.html": record(2000, "f", 700, HTML),
    "**bold** <img src=x>.js": record(10, "g"),
}


def build_with(app: App, deployment_id: str, files: dict[str, Any]) -> None:
    """What a successful builder does, with this manifest; then the loops run."""
    build = app.runner.build_of(deployment_id)
    storage = app.services.reconciler.storage
    manifest = json.dumps({"version": 1, "files": files}).encode()

    async def work() -> None:
        await storage.put(f"{build.spec.output_prefix}{MANIFEST}", manifest)
        await app.services.bus.append(deployment_id, {"type": "end", "ok": True})

    app.client.run(work)
    build.status = RunStatus.SUCCEEDED
    app.settle()


def newest(app: App, **where: Any) -> str:
    rows = [row for row in app.deployments() if all(row[k] == v for k, v in where.items())]
    return str(rows[-1]["id"])


def production_then_pull_request(app: App) -> tuple[str, str]:
    app.deliver("push", payload("push.commits"))
    tick(app.client)
    production = newest(app, target="production")
    build_with(app, production, PRODUCTION)
    app.deliver("pull_request", pr_event("opened"))
    tick(app.client)
    preview = newest(app, pr_number=2)
    return production, preview


def test_the_comment_says_what_the_preview_changed(app: App, token: str) -> None:
    production, preview = production_then_pull_request(app)
    reporter_storage = app.services.reporter.comments.diffs.storage
    counting = app.services.reporter.comments.diffs.storage = CountingStorage(reporter_storage)
    build_with(app, preview, PREVIEW)

    [comment] = app.github.comments_on(REPO, 2)
    body = comment.body
    assert "| **web** | ✅ Ready |" in body
    assert (
        "<details><summary><b>web</b>: 3 added, 2 removed, 1 changed · "
        "brotli 45.7 KiB → 52.5 KiB</summary>"
    ) in body
    assert f"Compared with production (deployment `{production}`)." in body
    assert "| Brotli | 45.7 KiB | 52.5 KiB | +6.8 KiB |" in body
    assert "| Raw | 151.9 KiB | 180.8 KiB | +28.9 KiB |" in body
    assert (
        "- **Added (3):** `**bold** <img src=x>.js`, `assets/index-2.js`, `blog/index.html`"
    ) in body
    assert "- **Removed (2):** `assets/index-1.js`, `pricing/index.html`" in body
    assert "- **Changed (1):** `index.html`" in body
    assert "- **Pages added (1):** `/blog/`" in body
    assert "- **Pages removed (1):** `/pricing/`" in body
    assert "- `assets/index-2.js`: added, 175.8 KiB (+175.8 KiB; brotli +50.8 KiB)" in body
    assert "- `assets/index-1.js`: removed, 146.5 KiB (-146.5 KiB; brotli -43.9 KiB)" in body
    assert f"[Full diff on the deployment page](http://localhost:8000/deployments/{preview})" in (
        body
    )
    assert "- `index.html`: 2.9 KiB → 3.0 KiB (+100 B; brotli +30 B)" in body
    assert body.rstrip().endswith("</details>")
    # Two manifests read, once each, however often the comment is written again.
    read = counting.streamed
    assert read == sum(
        len(json.dumps({"version": 1, "files": files}).encode()) for files in (PRODUCTION, PREVIEW)
    )
    app.client.run(lambda: Deployment.update({Deployment.report_pending: True}, force=True))
    edits = f"/repos/{REPO}/issues/comments/{comment.id}"
    before = len(app.github.calls_to("PATCH", edits))
    app.report()
    assert len(app.github.calls_to("PATCH", edits)) > before  # written again…
    assert counting.streamed == read  # …without reading storage again
    assert app.github.comments_on(REPO, 2)[0].body == body


def test_each_project_listed_gets_its_section(app: App, token: str) -> None:
    app.client.post("/project", json={"name": "docs", "repo": REPO}, headers=bearer(token))
    bind(app.client, "docs", REPO_ID)
    app.deliver("pull_request", pr_event("opened"))
    tick(app.client)
    web = newest(app, pr_number=2, project=1)
    docs = newest(app, pr_number=2, project=2)
    build_with(app, web, PREVIEW)
    build_with(app, docs, PREVIEW)
    [comment] = app.github.comments_on(REPO, 2)
    # Neither project has production yet: each section says so.
    for slug in ("web", "docs"):
        assert (
            f"<details><summary><b>{slug}</b>: not compared</summary>\n\n"
            f"Project \\'{slug}\\' has no production deployment to compare with yet\\."
        ) in comment.body
