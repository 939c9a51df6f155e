"""The dashboard shows a skipped deployment as skipped, with why, and no URL to visit."""

from __future__ import annotations

from datetime import UTC, datetime

from app.deployments.lifecycle import DeploymentState
from app.tables import Deployment
from tests.support.api import Client
from tests.support.pages import HTML, browser_signup, deployment_ids, new_project

WHY = "the ignoreCommand 'git diff --quiet HEAD^ HEAD -- docs/' exited with code 0"


def test_a_skipped_deployment_shows_skipped_and_why(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    client.post("/ui/projects/my-site/deploy", data={"csrf": csrf})
    (deployment_id,) = deployment_ids(client, "my-site")
    client.run(
        lambda: Deployment.update(
            {
                Deployment.state: DeploymentState.SKIPPED,
                Deployment.error: WHY,
                Deployment.finished_at: datetime.now(UTC),
            }
        ).where(Deployment._meta.primary_key == deployment_id)
    )

    page = client.get(f"/deployments/{deployment_id}", headers=HTML).text
    table = client.get("/ui/projects/my-site/deployments").text

    assert "Deployment skipped: the ignoreCommand" in page
    assert 'class="banner state-skipped"' in page
    assert 'class="badge state-skipped"' in table
    assert '<span class="why">the ignoreCommand &#39;git diff' in table
    assert "Promote" not in table
    assert "Rollback" not in table
