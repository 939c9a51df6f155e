"""What users see on GitHub: commit statuses, GitHub Deployments and one PR comment.

Driven by deployment state, not by events: every state change (and retirement) clears
`Deployment.github_reported`, and this loop tells GitHub the current phase of each such
deployment, then records what it said. A failed call is logged and retried on a later pass with a
growing delay, so reporting never blocks or fails a build, and a GitHub outage heals by itself.
GitHub's vocabulary comes from the one mapping in `app.deployments`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app import hostnames, installations, triggers
from app.deployments import to_github_deployment_state, to_github_state
from app.github.api import CommentGone, GitHubApi, GitHubError
from app.installations import Covered
from app.settings import Settings
from app.tables import Deployment, DeploymentState, PullRequestComment, Target

log = logging.getLogger(__name__)

S = DeploymentState
MARKER = "<!-- scalemesh:preview -->"
MAX_DESCRIPTION = 140
UNREPORTED = "unreported"
"""Stored for a deployment no installation covers: there is no one on GitHub to tell."""
BATCH = 50
CLAIM = "c:"
"""`github_reported` while one replica reports: `c:<unix seconds, 10 digits><4 hex>`."""
CLAIM_TTL = 120.0
"""A claim older than this was left by a replica that died mid-report."""
WRITING = 0
"""`PullRequestComment.comment_id` while one replica creates the comment (GitHub ids start at 1)."""
FIRST_RETRY = 2.0
MAX_RETRY = 300.0

_BADGES = {
    S.QUEUED: "⏳ Queued",
    S.BUILDING: "🔨 Building",
    S.READY: "✅ Ready",
    S.FAILED: "❌ Failed",
    S.CANCELLED: "⏹️ Cancelled",
}


class CommentBusy(Exception):
    """Another replica is creating this pull request's comment; try again on a later pass."""


def _busy(repository: str, number: int) -> str:
    return f"another replica is writing the comment on {repository}#{number}"


def _claim(at: float) -> str:
    return f"{CLAIM}{int(at):010d}"


def shorten(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """One line of at most `limit` characters (GitHub refuses longer status descriptions)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def environment(slug: str, target: str) -> str:
    return "Production" if target == Target.PRODUCTION else f"Preview \N{EN DASH} {slug}"


@dataclass(frozen=True, slots=True)
class Report:
    """A deployment as GitHub is told of it."""

    deployment_id: str
    slug: str
    repository: str
    sha: str
    state: DeploymentState
    target: str
    branch: str | None
    pr_number: int | None
    error: str | None
    platform_fault: bool
    retired: bool
    from_fork: bool
    github_deployment_id: int | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Report:
        return cls(
            deployment_id=str(row["id"]),
            slug=str(row["project.slug"]),
            repository=str(row["project.github_repository"]),
            sha=str(row["sha"]),
            state=S(row["state"]),
            target=str(row["target"]),
            branch=row["branch"],
            pr_number=row["pr_number"],
            error=row["error"],
            platform_fault=bool(row["platform_fault"]),
            retired=bool(row["retired"]),
            from_fork=bool(row["from_fork"]),
            github_deployment_id=row["github_deployment_id"],
        )

    @property
    def phase(self) -> str:
        return "inactive" if self.retired else str(self.state)

    def description(self, url: str) -> str:
        if self.state is S.QUEUED:
            return "Waiting for a builder…"
        if self.state is S.BUILDING:
            return "Building…"
        if self.state is S.READY:
            return shorten(f"Deployed to {url}")
        if self.platform_fault:
            return shorten(
                "Scale Mesh could not finish this build (our fault, it is logged). Push to retry."
            )
        if self.state is S.CANCELLED:
            if self.error == triggers.FORK_REFUSED:
                return shorten(triggers.FORK_REFUSED)
            return shorten(f"Cancelled: {self.error or 'by a user'}")
        return shorten(self.error or "The build failed; see the log.")


_COLUMNS = (
    Deployment._meta.primary_key,
    Deployment.project.slug,
    Deployment.project.github_repository,
    Deployment.sha,
    Deployment.state,
    Deployment.target,
    Deployment.branch,
    Deployment.pr_number,
    Deployment.error,
    Deployment.platform_fault,
    Deployment.retired,
    Deployment.from_fork,
    Deployment.github_deployment_id,
    Deployment.github_reported,
)


class Reporter:
    """Tells GitHub about deployments whose state it has not heard of yet."""

    def __init__(self, settings: Settings, github: GitHubApi) -> None:
        self.settings = settings
        self.github = github
        self._retry: dict[str, tuple[float, float]] = {}
        """deployment id → (delay used last, monotonic time of the next attempt)."""

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                # A database blip must not end reporting for the life of the process.
                log.exception("github report pass failed")
            await asyncio.sleep(self.settings.reconcile_interval)

    async def tick(self) -> int:
        """One pass; returns how many deployments GitHub was told about."""
        now = time.monotonic()
        stale_claims = _claim(time.time() - CLAIM_TTL)
        rows = await (
            Deployment.select(*_COLUMNS)
            .where(
                (
                    Deployment.github_reported.is_null()
                    | (
                        Deployment.github_reported.like(f"{CLAIM}%")
                        & (Deployment.github_reported < stale_claims)
                    )
                )
                & Deployment.project.github_repository.is_not_null()
            )
            .order_by(Deployment.created_at)
            .limit(BATCH)
        )
        told = 0
        for row in rows:
            report = Report.of(row)
            retry = self._retry.get(report.deployment_id)
            if retry is not None and retry[1] > now:
                continue
            claim = await self._claim(report, row["github_reported"])
            if claim is None:
                continue  # another replica is telling GitHub about it
            covered = await installations.covered(report.repository)
            if covered is None:
                await self._settle(report, claim, UNREPORTED)
                continue
            try:
                await self.report(report, covered)
            except (GitHubError, CommentBusy) as exc:
                await self._settle(report, claim, None)
                delay = min(MAX_RETRY, retry[0] * 2 if retry else FIRST_RETRY)
                self._retry[report.deployment_id] = (delay, now + delay)
                log.warning(
                    "github report failed; will retry",
                    extra={
                        "deployment_id": report.deployment_id,
                        "project": report.slug,
                        "error": str(exc),
                        "retry_in": delay,
                    },
                )
                continue
            self._retry.pop(report.deployment_id, None)
            await self._settle(report, claim, report.phase)
            told += 1
        return told

    async def _claim(self, report: Report, seen: str | None) -> str | None:
        """Take the deployment for this pass, so two API replicas never report it both at once
        (they would create two GitHub Deployments). A claim older than `CLAIM_TTL` belonged to a
        replica that died mid-report, and may be taken over."""
        claim = f"{_claim(time.time())}{secrets.token_hex(2)}"
        current = (
            Deployment.github_reported.is_null()
            if seen is None
            else Deployment.github_reported == seen
        )
        taken = await (
            Deployment.update({Deployment.github_reported: claim})
            .where(
                (Deployment._meta.primary_key == report.deployment_id)
                & current
                # As read: a change since would be reported with stale words.
                & (Deployment.state == report.state)
                & (Deployment.retired == report.retired)
            )
            .returning(Deployment._meta.primary_key)
        )
        return claim if taken else None

    async def _settle(self, report: Report, claim: str, phase: str | None) -> None:
        """Record what GitHub now knows (None: nothing, try again later).

        Only if nothing changed meanwhile: every change clears the claim, and then the newer
        state is reported in its turn.
        """
        await Deployment.update({Deployment.github_reported: phase}).where(
            (Deployment._meta.primary_key == report.deployment_id)
            & (Deployment.github_reported == claim)
        )

    def _urls(self, report: Report) -> tuple[str, str]:
        own = self.settings.deployment_url(
            hostnames.deployment_label(report.slug, report.deployment_id)
        )
        return own, f"{self.settings.public_url}/deployments/{report.deployment_id}"

    async def report(self, report: Report, covered: Covered) -> None:
        """Bring GitHub up to date with one deployment."""
        own_url, log_url = self._urls(report)
        description = report.description(own_url)
        installation, repository = covered.installation_id, covered.full_name
        deployment_id = report.github_deployment_id
        never_built = report.state is S.CANCELLED or report.retired
        if deployment_id is None and not never_built:
            deployment_id = await self.github.create_deployment(
                installation,
                repository,
                sha=report.sha,
                environment=environment(report.slug, report.target),
                description=shorten(f"{report.slug}: {report.target} deployment"),
                transient=report.target != Target.PRODUCTION,
                production=report.target == Target.PRODUCTION,
            )
            # Saved at once: a retry must not create a second GitHub deployment.
            await Deployment.update({Deployment.github_deployment_id: deployment_id}).where(
                Deployment._meta.primary_key == report.deployment_id
            )
        if deployment_id is not None:
            ready = report.state is S.READY and not report.retired
            await self.github.set_deployment_status(
                installation,
                repository,
                deployment_id,
                state=to_github_deployment_state(
                    report.state, platform_fault=report.platform_fault, retired=report.retired
                ),
                environment_url=self._environment_url(report, own_url) if ready else None,
                log_url=log_url,
                description=description,
            )
        if not report.retired:
            await self.github.set_commit_status(
                installation,
                repository,
                report.sha,
                state=to_github_state(report.state, platform_fault=report.platform_fault),
                context=f"scalemesh/{report.slug}",
                description=description,
                target_url=own_url if report.state is S.READY else log_url,
            )
            if report.pr_number is not None:
                await self.refresh_comment(installation, repository, report.pr_number)
        log.info(
            "github told",
            extra={
                "deployment_id": report.deployment_id,
                "project": report.slug,
                "phase": report.phase,
            },
        )

    def _environment_url(self, report: Report, own_url: str) -> str:
        if report.target == Target.PRODUCTION:
            return self.settings.deployment_url(hostnames.production_label(report.slug))
        if report.branch is not None:
            return self.settings.deployment_url(hostnames.branch_label(report.slug, report.branch))
        return own_url

    # --- the pull request comment ---------------------------------------------------------

    async def comment_body(self, repository: str, number: int) -> str:
        """A table with one row per project: its newest deployment for this pull request."""
        lines = [
            MARKER,
            "**Scale Mesh** previews for this pull request",
            "",
            "| Project | Status | Preview | Inspect | Updated (UTC) |",
            "| :--- | :--- | :--- | :--- | :--- |",
        ]
        refused = False
        for project in await triggers.linked_projects(repository):
            row = await (
                Deployment.select(*_COLUMNS, Deployment.created_at, Deployment.finished_at)
                .where((Deployment.project == project["id"]) & (Deployment.pr_number == number))
                .order_by(Deployment.created_at, ascending=False)
                .first()
            )
            if row is None:
                continue
            report = Report.of(row)
            own_url, log_url = self._urls(report)
            status = _BADGES[report.state]
            if report.error == triggers.FORK_REFUSED:
                status, refused = "🔒 Not built (fork)", True
            preview = (
                f"[Visit preview]({self._environment_url(report, own_url)})"
                if report.state is S.READY
                else "—"
            )
            updated: datetime = row["finished_at"] or row["created_at"]
            lines.append(
                f"| **{report.slug}** | {status} | {preview} | [Inspect]({log_url}) "
                f"| {updated.astimezone(UTC):%b %d, %Y %H:%M} |"
            )
        if refused:  # the reason once, under the table, not in every row
            lines += ["", f"> {triggers.FORK_REFUSED}"]
        return "\n".join(lines) + "\n"

    async def refresh_comment(self, installation: int, repository: str, number: int) -> None:
        """Create the pull request's one comment, or edit it in place (recreated if deleted).

        Two replicas reporting two projects of one pull request at once must not both create
        a comment: whoever creates it first holds the pull request's row (`WRITING` as its
        comment id); the other is told `CommentBusy` and edits the comment on a later pass.
        """
        body = await self.comment_body(repository, number)
        known = await (
            PullRequestComment.select(PullRequestComment.comment_id, PullRequestComment.updated_at)
            .where(
                (PullRequestComment.repository == repository)
                & (PullRequestComment.pr_number == number)
            )
            .first()
        )
        where = (installation, repository, number)
        remembered = None if known is None else int(known["comment_id"])
        if remembered not in (None, WRITING) and await self._edit(*where, remembered, body):
            return
        await self._hold_comment(repository, number, known)
        try:
            found = None
            if known is None or known["comment_id"] == WRITING:
                # Never written here, or by a replica that died meanwhile (perhaps after
                # creating it), or an earlier install left one: look for our marker first.
                found = await self.github.find_comment(installation, repository, number, MARKER)
            if found is not None and await self._edit(*where, found, body):
                return
            created = await self.github.create_comment(installation, repository, number, body)
            await self._remember(repository, number, created)
        except BaseException:
            await self._release_comment(repository, number)
            raise

    async def _edit(
        self, installation: int, repository: str, number: int, comment_id: int, body: str
    ) -> bool:
        """Edit the comment and remember its id; False when it was deleted on GitHub."""
        try:
            await self.github.update_comment(installation, repository, comment_id, body)
        except CommentGone:
            return False
        await self._remember(repository, number, comment_id)
        return True

    async def _hold_comment(
        self, repository: str, number: int, known: dict[str, Any] | None
    ) -> None:
        """Take the pull request's row for writing its comment, or raise `CommentBusy`."""
        now = datetime.now(UTC)
        if known is None:
            taken = await (
                PullRequestComment.insert(
                    PullRequestComment(
                        repository=repository, pr_number=number, comment_id=WRITING, updated_at=now
                    )
                )
                .on_conflict(
                    target=(PullRequestComment.repository, PullRequestComment.pr_number),
                    action="DO NOTHING",
                )
                .returning(PullRequestComment.comment_id)
            )
        else:
            stale = now - timedelta(seconds=CLAIM_TTL)
            if known["comment_id"] == WRITING:
                if known["updated_at"] > stale:
                    raise CommentBusy(_busy(repository, number))
                # Held by a replica that died mid-write; still stale when we take it over.
                still = (PullRequestComment.comment_id == WRITING) & (
                    PullRequestComment.updated_at < stale
                )
            else:  # the remembered comment was deleted on GitHub: replace it
                still = PullRequestComment.comment_id == known["comment_id"]
            taken = await (
                PullRequestComment.update(
                    {PullRequestComment.comment_id: WRITING, PullRequestComment.updated_at: now}
                )
                .where(
                    (PullRequestComment.repository == repository)
                    & (PullRequestComment.pr_number == number)
                    & still
                )
                .returning(PullRequestComment.comment_id)
            )
        if not taken:
            raise CommentBusy(_busy(repository, number))

    async def _release_comment(self, repository: str, number: int) -> None:
        """Give up a hold after a failure, so the next pass (of any replica) starts afresh."""
        await PullRequestComment.delete().where(
            (PullRequestComment.repository == repository)
            & (PullRequestComment.pr_number == number)
            & (PullRequestComment.comment_id == WRITING)
        )

    async def _remember(self, repository: str, number: int, comment_id: int) -> None:
        await PullRequestComment.insert(
            PullRequestComment(
                repository=repository,
                pr_number=number,
                comment_id=comment_id,
                updated_at=datetime.now(UTC),
            )
        ).on_conflict(
            target=(PullRequestComment.repository, PullRequestComment.pr_number),
            action="DO UPDATE",
            values=[PullRequestComment.comment_id, PullRequestComment.updated_at],
        )
