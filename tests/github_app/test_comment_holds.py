"""One PR comment across replicas: the hold on a pull request's row, taken, lost and let go."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.reporting.comment import HOLD_TTL, MARKER, CommentBusy
from app.reporting.reporter import Reporter
from app.reporting.retries import FIRST_RETRY
from app.settings import Settings
from app.tables import (
    PullRequestComment,
)
from tests.support.api import bearer
from tests.support.binding import bind
from tests.support.clock import FrozenClock
from tests.support.github_app import (
    App,
    pr_event,
)
from tests.support.waiting import WAIT_S
from tests.support.webhooks import INSTALLATION, REPO, REPO_ID


def test_two_replicas_writing_one_pull_requests_comment_create_one(
    app: App, token: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.client.post("/project", json={"name": "docs", "repo": REPO}, headers=bearer(token))
    bind(app.client, "docs", REPO_ID)
    app.deliver("pull_request", pr_event("opened"))  # a preview for `web` and one for `docs`
    first: Reporter = app.services.reporter
    second = Reporter(settings, app.services.github)
    create = app.services.github.create_comment
    refused = asyncio.Event()

    def watch(comments: Any) -> None:
        hold = comments._hold

        async def watched(*args: Any) -> None:
            try:
                await hold(*args)
            except CommentBusy:
                refused.set()
                raise

        monkeypatch.setattr(comments, "_hold", watched)

    async def create_once_the_other_is_refused(*args: Any) -> int:
        # Whoever holds the row creates the comment only after the other replica was turned
        # away: both are then inside the write at once, whichever got there first.
        await asyncio.wait_for(refused.wait(), WAIT_S)
        comment_id: int = await create(*args)
        return comment_id

    watch(first.comments)
    watch(second.comments)
    monkeypatch.setattr(app.services.github, "create_comment", create_once_the_other_is_refused)

    async def both() -> list[object]:
        writes = (
            reporter.comments.refresh(INSTALLATION, REPO, 2, repository_id=REPO_ID)
            for reporter in (first, second)
        )
        return list(await asyncio.gather(*writes, return_exceptions=True))

    outcomes = app.client.run(both)
    # Either may take the hold first (on PostgreSQL the inserts race over the wire); the other
    # is told to come back on a later pass.
    assert [outcome for outcome in outcomes if outcome is None] == [None]
    assert [type(outcome) for outcome in outcomes if outcome is not None] == [CommentBusy]
    # Had both read "no comment yet" before either took the row, the second still loses:
    with pytest.raises(CommentBusy):
        app.client.run(lambda: second.comments._hold(REPO, 2, None))
    [comment] = app.github.comments_on(REPO, 2)
    app.client.run(lambda: second.comments.refresh(INSTALLATION, REPO, 2, repository_id=REPO_ID))
    assert [c.id for c in app.github.comments_on(REPO, 2)] == [comment.id]
    body = app.github.comments[comment.id].body
    assert "**web**" in body
    assert "**docs**" in body


def test_a_comment_hold_left_by_a_replica_that_died_is_taken_over(
    app: App, token: str, clock: FrozenClock
) -> None:
    app.deliver("pull_request", pr_event("opened"))
    # Died after creating the comment, before remembering its id.
    ours = app.github.add_comment(REPO, 2, f"{MARKER}\nhalf-written", login="scalemesh[bot]")

    def hold(updated_at: datetime) -> None:
        app.client.run(
            lambda: PullRequestComment.insert(
                PullRequestComment(
                    repository=REPO,
                    pr_number=2,
                    comment_id=None,
                    state="writing",
                    updated_at=updated_at,
                )
            )
        )

    hold(datetime.now(UTC))
    assert app.report() == 0  # a fresh hold: another replica is at it
    assert "half-written" in app.github.comments[ours.id].body

    app.client.run(lambda: PullRequestComment.delete(force=True))
    hold(datetime.now(UTC) - timedelta(seconds=HOLD_TTL + 60))
    clock.advance(FIRST_RETRY)  # the failed pass's retry is due
    assert app.report() == 1
    assert [c.id for c in app.github.comments_on(REPO, 2)] == [ours.id]  # found, not doubled
    assert "half-written" not in app.github.comments[ours.id].body
    stored = app.client.run(lambda: PullRequestComment.select().first())
    assert stored["comment_id"] == ours.id
    assert stored["state"] == "written"


def test_a_failed_comment_write_lets_go_of_its_hold(
    app: App, token: str, clock: FrozenClock
) -> None:
    app.deliver("pull_request", pr_event("opened"))
    app.github.fail("create_comment", status=502)
    assert app.report() == 0
    assert app.client.run(lambda: PullRequestComment.select()) == []  # no hold left behind
    app.github.heal()
    clock.advance(FIRST_RETRY)  # the failed pass's retry is due
    assert app.report() == 1
    [comment] = app.github.comments_on(REPO, 2)
    stored = app.client.run(lambda: PullRequestComment.select().first())
    assert stored["comment_id"] == comment.id
