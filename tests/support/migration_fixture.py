"""A database at migration 0003 exactly, holding rows as the code of that schema wrote them.

Rows go in as plain SQL against 0003's columns, not through `app.tables` (which follows the
newest schema), so this keeps describing the old schema however the tables change. Every value
is fixed: the same rows, ids and timestamps on every run and on either engine.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from piccolo.apps.migrations.commands.forwards import run_forwards
from piccolo.engine.base import Engine
from piccolo.querystring import QueryString

from app import database

MIGRATION_0003 = "2026-11-28T00:00:00:000000"
"""The last migration the fixture applies."""

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
"""When the fixture's rows were written; every timestamp is at or before it."""

FORK_REFUSED = (
    "Not built: pull requests from forks are not built, so they never see the project's "
    "secrets. A project owner can allow fork builds in the project settings."
)
"""`app.triggers.FORK_REFUSED` as the previous code wrote it."""

_NAMESPACE = uuid.UUID("5ca1e3e5-0000-4000-8000-000000000004")


def deployment_id(label: str) -> uuid.UUID:
    """The fixed id of the fixture's deployment with this label."""
    return uuid.uuid5(_NAMESPACE, label)


def claim(at: datetime, suffix: str) -> str:
    """`github_reported` while a replica of the previous code reported the deployment."""
    return f"c:{int(at.timestamp()):010d}{suffix}"


@dataclass(frozen=True, slots=True)
class OldDeployment:
    """A deployment row as 0003 stored it; the rest of its columns follow from these."""

    label: str
    state: str
    github_reported: str | None
    error: str | None = None
    platform_fault: bool = False
    from_fork: bool = False
    retired: bool = False
    project: str = "site"
    pr_number: int | None = None


DEPLOYMENTS = (
    OldDeployment("queued-unreported", "queued", None),
    OldDeployment("queued-reported", "queued", "queued", pr_number=7),
    OldDeployment("building-claimed", "building", claim(NOW - timedelta(seconds=30), "a1b2")),
    OldDeployment("building-reported", "building", "building"),
    OldDeployment("ready-reported", "ready", "ready"),
    OldDeployment("ready-retired", "ready", "inactive", retired=True, pr_number=12),
    OldDeployment("ready-no-installation", "ready", "unreported", project="docs"),
    OldDeployment("ready-pending", "ready", None, project="docs"),
    OldDeployment(
        "cancelled-fork", "cancelled", "cancelled", FORK_REFUSED, from_fork=True, pr_number=9
    ),
    OldDeployment(
        "cancelled-superseded",
        "cancelled",
        None,
        f"superseded by {deployment_id('ready-reported')}",
    ),
    OldDeployment(
        "cancelled-branch-deleted",
        "cancelled",
        claim(NOW - timedelta(minutes=10), "ff09"),
        "the branch was deleted",
        retired=True,
    ),
    OldDeployment("cancelled-by-user", "cancelled", "cancelled", "cancelled"),
    OldDeployment("cancelled-without-error", "cancelled", "cancelled"),
    OldDeployment("failed-timeout", "failed", "failed", "the build timed out after 900 s"),
    OldDeployment(
        "failed-no-output",
        "failed",
        "failed",
        "the build finished without uploading its files",
        platform_fault=True,
    ),
    OldDeployment(
        "failed-start",
        "failed",
        "failed",
        "the build could not start: ECS could not start the build: RESOURCE:MEMORY",
        platform_fault=True,
    ),
    OldDeployment(
        "failed-env-vars",
        "failed",
        None,
        "the project's env vars cannot be decrypted: was SCALEMESH_SECRET_KEY changed?",
        platform_fault=True,
    ),
    OldDeployment(
        "failed-clone-token",
        "failed",
        "failed",
        "GitHub gave no token to clone the private repository acme/site",
        platform_fault=True,
    ),
    OldDeployment(
        "failed-restart",
        "failed",
        "failed",
        "interrupted by a restart before the build began",
        platform_fault=True,
    ),
    OldDeployment("failed-build", "failed", "failed", 'npm ERR! Missing script: "build"'),
    OldDeployment("failed-without-error", "failed", "failed"),
    # The builder's own words, which only look like the platform's: still the build's failure.
    OldDeployment(
        "failed-build-mentions-timeout",
        "failed",
        "failed",
        "vite: the build timed out after 60 s waiting for esbuild",
    ),
    OldDeployment(
        "failed-build-timeout-capitalised",
        "failed",
        "failed",
        "The build timed out after 900 s",
    ),
)
"""Every state, each error text the previous code wrote, and each kind of `github_reported`."""

ALIASES = (
    ("site", "site", "ready-reported"),
    ("site--pr-12", "site", "ready-retired"),
    ("docs", "docs", "ready-no-installation"),
)
"""(hostname, project, deployment label): rows that refer to deployments, and must outlive 0004."""

COMMENTS = (
    ("acme/site", 7, 0),
    ("acme/site", 12, 2_147_483_648_123),
    ("acme/docs", 3, 1_987_654_321),
)
"""(repository, pull request, comment id) as the previous code kept them; 0 = being written."""


async def build(engine: Engine[Any]) -> None:
    """Migrate an empty database up to 0003, no further, and fill it."""
    database.bind(engine)
    result = await run_forwards("scalemesh", migration_id=MIGRATION_0003)
    if not result.success:
        raise RuntimeError(f"could not migrate the fixture to 0003: {result.message}")
    await populate(engine)


async def populate(engine: Engine[Any]) -> None:
    """Write the fixture's rows into a database at 0003."""
    users = {
        email: await _insert(
            engine,
            "scalemesh_user",
            {
                "email": email,
                "password_hash": f"$argon2id$v=19$m=65536,t=3,p=4${email}",
                # Not left to its default (the clock): a snapshot of the fixture, taken earlier
                # in the run (`tests.support.migration_snapshots`), holds the same rows.
                "created_at": NOW - timedelta(days=31),
            },
        )
        for email in ("ada@example.com", "grace@example.com")
    }
    projects = {
        "site": await _insert(
            engine,
            "scalemesh_project",
            _project("site", users["ada@example.com"], "acme/site"),
        ),
        "docs": await _insert(
            engine,
            "scalemesh_project",
            _project("docs", users["grace@example.com"], None),
        ),
    }
    for index, deployment in enumerate(DEPLOYMENTS):
        await _insert(
            engine,
            "scalemesh_deployment",
            _deployment(index, deployment, projects[deployment.project]),
            returning=None,
        )
    for hostname, project, label in ALIASES:
        await _insert(
            engine,
            "scalemesh_alias",
            {
                "hostname": hostname,
                "project": projects[project],
                "deployment": deployment_id(label),
                "updated_at": NOW,
            },
        )
    for repository, number, comment_id in COMMENTS:
        await _insert(
            engine,
            "scalemesh_pull_request_comment",
            {
                "repository": repository,
                "pr_number": number,
                "comment_id": comment_id,
                "updated_at": NOW - timedelta(minutes=number),
            },
        )


def _project(slug: str, owner: int, repository: str | None) -> dict[str, object]:
    return {
        "slug": slug,
        "name": slug.capitalize(),
        "owner": owner,
        "github_repository": repository,
        "git_url": f"https://github.com/{repository}.git"
        if repository
        else "https://git.example/docs.git",
        "production_branch": "main",
        "build_command": "npm run build",
        "created_at": NOW - timedelta(days=30),
        "updated_at": NOW - timedelta(days=30),
    }


def _deployment(index: int, deployment: OldDeployment, project: int) -> dict[str, object]:
    created = NOW - timedelta(hours=len(DEPLOYMENTS) - index)
    started = deployment.state != "queued"
    final = deployment.state in ("ready", "failed", "cancelled")
    branch = f"pr-{deployment.pr_number}" if deployment.pr_number else "main"
    return {
        "id": deployment_id(deployment.label),
        "project": project,
        "sha": hashlib.sha1(deployment.label.encode()).hexdigest(),  # noqa: S324 - a made-up sha
        "git_ref": branch,
        "branch": branch,
        "pr_number": deployment.pr_number,
        "commit_message": f"Change {index}",
        "target": "production" if branch == "main" else "preview",
        "state": deployment.state,
        "created_at": created,
        "started_at": created + timedelta(seconds=5) if started else None,
        "ready_at": created + timedelta(minutes=2) if deployment.state == "ready" else None,
        "finished_at": created + timedelta(minutes=3) if final else None,
        "runner_handle": f"local:{4000 + index}" if started else None,
        "error": deployment.error,
        "github_deployment_id": (
            3_000_000_000 + index
            if deployment.github_reported not in (None, "unreported")
            else None
        ),
        "platform_fault": deployment.platform_fault,
        "from_fork": deployment.from_fork,
        "retired": deployment.retired,
        "github_reported": deployment.github_reported,
    }


async def _insert(
    engine: Engine[Any], table: str, row: Mapping[str, object], returning: str | None = "id"
) -> Any:
    columns = ", ".join(f'"{column}"' for column in row)
    holes = ", ".join("{}" for _ in row)
    sql = f'INSERT INTO "{table}" ({columns}) VALUES ({holes})'  # noqa: S608 - names are ours
    if returning is not None:
        sql += f' RETURNING "{returning}"'
    rows = await engine.run_querystring(QueryString(sql, *row.values()))
    return None if returning is None else rows[0][returning]
