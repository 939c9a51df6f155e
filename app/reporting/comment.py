"""The one PR comment per pull request: its table of previews, created once and edited in place.

Found again by a hidden marker. Two replicas reporting two projects of one pull request at once
must not both create a comment: whoever creates it first holds the pull request's row (state
`writing`); the other is told `CommentBusy` and edits the comment on a later pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from app.deployments.diffs import ProductionDiff, ProductionDiffs
from app.deployments.lifecycle import DeploymentState
from app.deployments.views import DeploymentView, DeploymentViews
from app.errors import ErrorCode, UserError
from app.github.api import CommentGone, GitHubApi
from app.projects.binding import bound_projects
from app.reporting import diff_section
from app.reporting.messages import badge
from app.retention.wording import removed_row_text
from app.tables import Deployment, PullRequestComment

MARKER = "<!-- scalemesh:preview -->"
HOLD_TTL = 120.0
"""A hold older than this was left by a replica that died while writing the comment."""


class CommentState(StrEnum):
    """`PullRequestComment.state`."""

    WRITING = "writing"
    """One replica is creating the comment; its id is not known yet."""
    WRITTEN = "written"


class CommentBusy(Exception):
    """Another replica is creating this pull request's comment; try again on a later pass."""


@dataclass(frozen=True, slots=True)
class KnownComment:
    comment_id: int | None
    state: CommentState
    updated_at: datetime

    COLUMNS = (
        PullRequestComment.comment_id,
        PullRequestComment.state,
        PullRequestComment.updated_at,
    )

    @classmethod
    def of(cls, row: dict[str, Any]) -> KnownComment:
        return cls(row["comment_id"], CommentState(row["state"]), row["updated_at"])


def _busy(repository: str, number: int) -> CommentBusy:
    return CommentBusy(f"another replica is writing the comment on {repository}#{number}")


def _this(repository: str, number: int) -> Any:
    return (PullRequestComment.repository == repository) & (PullRequestComment.pr_number == number)


class PullRequestComments:
    """Writes the comment of each pull request, as `views` read its deployments."""

    def __init__(
        self, github: GitHubApi, views: DeploymentViews, diffs: ProductionDiffs | None = None
    ) -> None:
        self.github = github
        self.views = views
        self.diffs = diffs

    async def body(self, repository_id: int, number: int) -> str:
        """A table with one row per project bound to the repository: its newest deployment for
        this pull request. A project that only names the repository has no row."""
        lines = [
            MARKER,
            "**Scale Mesh** previews for this pull request",
            "",
            "| Project | Status | Preview | Inspect | Updated (UTC) |",
            "| :--- | :--- | :--- | :--- | :--- |",
        ]
        refusal = None
        ready: list[DeploymentView] = []
        for project in await bound_projects(repository_id):
            view = await self.views.one(
                (Deployment.project == project.id) & (Deployment.pr_number == number)
            )
            if view is None:
                continue
            if view.error_code is ErrorCode.FORK_REFUSED:
                refusal = view.error
            preview = (
                f"[Visit preview]({view.environment_url})"
                if view.state is DeploymentState.READY
                else "—"
            )
            if view.pruned_at is not None:
                preview = removed_row_text()
            elif view.state is DeploymentState.READY:
                ready.append(view)
            updated = view.finished_at or view.created_at
            lines.append(
                f"| **{view.slug}** | {badge(view)} | {preview} | [Inspect]({view.log_url}) "
                f"| {updated.astimezone(UTC):%b %d, %Y %H:%M} |"
            )
        if refusal:  # the reason once, under the table, not in every row
            lines += ["", f"> {refusal}"]
        table = "\n".join(lines) + "\n"
        if self.diffs is None or not ready:
            return table
        sections = [await self._section(view, self.diffs) for view in ready]
        budget = diff_section.COMMENT_LIMIT - len(table) - diff_section.MARGIN
        return table + "\n" + "\n\n".join(diff_section.fit(sections, budget)) + "\n"

    async def _section(self, view: DeploymentView, diffs: ProductionDiffs) -> diff_section.Section:
        """The project's "what changed" section (the reason instead, when there is no diff)."""
        try:
            found: ProductionDiff | UserError = await diffs.against_production(view)
        except UserError as exc:
            found = exc
        return diff_section.section(view.slug, view.log_url, found)

    async def refresh(
        self, installation: int, repository: str, number: int, *, repository_id: int
    ) -> None:
        """Create the pull request's one comment, or edit it in place (recreated if deleted)."""
        body = await self.body(repository_id, number)
        row = await (
            PullRequestComment.select(*KnownComment.COLUMNS)
            .where(_this(repository, number))
            .first()
        )
        known = None if row is None else KnownComment.of(row)
        where = (installation, repository, number)
        remembered = None if known is None else known.comment_id
        if remembered is not None and await self._edit(*where, remembered, body):
            return
        await self._hold(repository, number, known)
        try:
            found = None
            if known is None or known.state is CommentState.WRITING:
                # Never written here, or by a replica that died meanwhile (perhaps after
                # creating it), or an earlier install left one: look for our marker first.
                found = await self.github.find_comment(installation, repository, number, MARKER)
            if found is not None and await self._edit(*where, found, body):
                return
            created = await self.github.create_comment(installation, repository, number, body)
            await self._remember(repository, number, created)
        except BaseException:
            await self._release(repository, number)
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

    async def _hold(self, repository: str, number: int, known: KnownComment | None) -> None:
        """Take the pull request's row for writing its comment, or raise `CommentBusy`."""
        now = datetime.now(UTC)
        if known is None:
            taken = await (
                PullRequestComment.insert(
                    PullRequestComment(
                        repository=repository,
                        pr_number=number,
                        comment_id=None,
                        state=CommentState.WRITING,
                        updated_at=now,
                    )
                )
                .on_conflict(
                    target=(PullRequestComment.repository, PullRequestComment.pr_number),
                    action="DO NOTHING",
                )
                .returning(PullRequestComment.state)
            )
        else:
            stale = now - timedelta(seconds=HOLD_TTL)
            if known.state is CommentState.WRITING:
                if known.updated_at > stale:
                    raise _busy(repository, number)
                # Held by a replica that died mid-write; still stale when we take it over.
                still = (PullRequestComment.state == CommentState.WRITING) & (
                    PullRequestComment.updated_at < stale
                )
            else:  # the remembered comment was deleted on GitHub: replace it
                still = (PullRequestComment.state == CommentState.WRITTEN) & (
                    PullRequestComment.comment_id == known.comment_id
                )
            taken = await (
                PullRequestComment.update(
                    {
                        PullRequestComment.comment_id: None,
                        PullRequestComment.state: CommentState.WRITING,
                        PullRequestComment.updated_at: now,
                    }
                )
                .where(_this(repository, number) & still)
                .returning(PullRequestComment.state)
            )
        if not taken:
            raise _busy(repository, number)

    async def _release(self, repository: str, number: int) -> None:
        """Give up a hold after a failure, so the next pass (of any replica) starts afresh."""
        await PullRequestComment.delete().where(
            _this(repository, number) & (PullRequestComment.state == CommentState.WRITING)
        )

    async def _remember(self, repository: str, number: int, comment_id: int) -> None:
        await PullRequestComment.insert(
            PullRequestComment(
                repository=repository,
                pr_number=number,
                comment_id=comment_id,
                state=CommentState.WRITTEN,
                updated_at=datetime.now(UTC),
            )
        ).on_conflict(
            target=(PullRequestComment.repository, PullRequestComment.pr_number),
            action="DO UPDATE",
            values=[
                PullRequestComment.comment_id,
                PullRequestComment.state,
                PullRequestComment.updated_at,
            ],
        )
