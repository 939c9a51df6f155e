"""End to end as a GitHub App: signed deliveries → real local builds → what GitHub is told.

The push is the real fixture with `clone_url` pointed at a local `file://` repository; the
builder really clones, builds (npm, offline) and uploads; the app's own loops run; GitHub is the
recording fake behind the real client.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.hostnames import deployment_label
from app.reporting.comment import MARKER
from app.settings import Settings
from app.tables import Deployment
from tests.support.git import git, head
from tests.support.pushed_repo import DEADLINE, on_the_app
from tests.support.sites import NPM_OFFLINE, make_site
from tests.support.waiting import wait_until
from tests.support.webhooks import REPO, payload


def wait_for(what: str, check: Callable[[], bool]) -> None:
    wait_until(check, within=DEADLINE, interval=0.2, what=what)


def test_a_push_and_a_pull_request_deploy_and_report(
    make_settings: Callable[..., Settings], database_url: str, tmp_path: Path
) -> None:
    repo = tmp_path / "hello-world"
    clone_url = make_site(repo)
    with on_the_app(make_settings, database_url, repo) as app:
        client, github, settings, deliver = app.client, app.github, app.settings, app.deliver
        app.project("web", production_branch="main", output_directory="dist", env=NPM_OFFLINE)

        app.push(sha := head(repo))

        statuses = f"/repos/{REPO}/statuses/{sha}"
        wait_for(
            "the success status",
            lambda: any(c.json["state"] != "pending" for c in github.calls_to("POST", statuses)),
        )
        told = [call.json for call in github.calls_to("POST", statuses)]
        [deployment] = client.run(lambda: Deployment.select(Deployment.id, Deployment.state))
        url = settings.deployment_url(deployment_label("web", str(deployment["id"])))
        assert deployment["state"] == "ready"
        assert told[0]["state"] == "pending"
        assert told[-1] == {
            "state": "success",
            "context": "scalemesh/web",
            "description": f"Deployed to {url}",
            "target_url": url,
        }

        # A pull request from a branch of the same repository, then a second push to it.
        git(repo, "checkout", "-q", "-b", "changes")
        opened = payload("pull_request.opened")
        opened["pull_request"]["head"]["sha"] = app.commit({"a.txt": "one"})
        opened["repository"]["clone_url"] = clone_url
        deliver("pull_request", opened)
        wait_for(
            "the first preview in the comment",
            lambda: any("✅ Ready" in c.body for c in github.comments_on(REPO, 2)),
        )
        [comment] = github.comments_on(REPO, 2)

        synchronize = payload("pull_request.synchronize")
        synchronize["pull_request"]["head"]["sha"] = second = app.commit({"b.txt": "two"})
        synchronize["repository"]["clone_url"] = clone_url
        deliver("pull_request", synchronize)
        wait_for(
            "the second preview's success status",
            lambda: any(
                c.json["state"] == "success"
                for c in github.calls_to("POST", f"/repos/{REPO}/statuses/{second}")
            ),
        )
        wait_for(
            "the comment to show the second preview ready",
            lambda: (
                "✅ Ready" in github.comments[comment.id].body
                and github.calls_to("PATCH", f"/repos/{REPO}/issues/comments/{comment.id}") != []
            ),
        )
        assert [c.id for c in github.comments_on(REPO, 2)] == [comment.id]
        assert len(github.calls_to("POST", f"/repos/{REPO}/issues/2/comments")) == 1
        assert github.comments[comment.id].body.startswith(MARKER)
        states = client.run(
            lambda: Deployment.select(Deployment.sha, Deployment.state).order_by(
                Deployment.created_at
            )
        )
        assert [(row["sha"], row["state"]) for row in states][-1] == (second, "ready")
