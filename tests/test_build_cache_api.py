"""Clearing the build cache: `POST /deploy {"clear_cache": true}` and the deployment page's
"Redeploy without cache" reach the build spec (with the production branch every branch falls
back to), and the upload grant lets a branch's build write its own cache key, a fork's none."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.settings import Settings
from app.tables import Deployment
from builder.spec import BuildSpec
from tests.support.api import Client, bearer
from tests.support.builds import Builds, ScriptedGrants, open_builds
from tests.support.deploying import deploy, make_roomy
from tests.support.deployments import tick
from tests.support.pages import HTML, browser_signup, deployment_ids, make_ready, new_project


@pytest.fixture
def builds(settings: Settings) -> Iterator[Builds]:
    yield from open_builds(settings)


def stored_flag(client: Client, deployment_id: str) -> bool:
    row = client.run(
        lambda: (
            Deployment.select(Deployment.clear_cache)
            .where(Deployment._meta.primary_key == deployment_id)
            .first()
        )
    )
    assert row is not None
    return bool(row["clear_cache"])


def mark_from_fork(client: Client, deployment_id: str) -> None:
    async def mark() -> None:
        await Deployment.update({Deployment.from_fork: True}).where(
            Deployment._meta.primary_key == deployment_id
        )

    client.run(mark)


def test_deploying_with_clear_cache_reaches_the_builds_spec(builds: Builds) -> None:
    client = builds.client
    cleared = deploy(client, builds.user_token, ref="main", clear_cache=True)["id"]
    tick(client)
    plain = deploy(client, builds.user_token, ref="feature/login")["id"]
    tick(client)

    assert stored_flag(client, cleared) is True
    assert stored_flag(client, plain) is False
    first, second = builds.runner.spec_of(cleared), builds.runner.spec_of(plain)
    assert (first.clear_cache, first.production_branch, first.branch) == (True, "main", "main")
    assert (second.clear_cache, second.production_branch) == (False, "main")
    assert second.branch == "feature/login"


def test_clear_cache_must_be_a_boolean(builds: Builds) -> None:
    response = builds.client.post(
        "/deploy",
        json={"project": "web", "clear_cache": "yes"},
        headers=bearer(builds.user_token),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert builds.client.run(lambda: Deployment.count()) == 0


def test_the_grant_writes_the_branchs_cache_and_never_a_forks(settings: Settings) -> None:
    grants = ScriptedGrants()
    for builds in open_builds(make_roomy(settings), grants):
        branch = builds.building("main")
        fork = builds.building("feature/login")
        mark_from_fork(builds.client, fork)
        tag = builds.building("v1.0")
        for deployment_id in (branch, fork, tag):
            fetched = builds.fetch_spec(deployment_id, builds.token_for(deployment_id))
            assert fetched.status_code == 200, fetched.text
            assert BuildSpec.from_json(fetched.json()).production_branch == "main"

        assert grants.cache_branches == ["main", None, None]


def test_a_project_given_a_deleted_ones_id_keeps_its_caches_apart(settings: Settings) -> None:
    # SQLite gives the newest project's id to the next one made once it is deleted; its
    # builds must not read (nor its credentials reach) the deleted project's caches.
    grants = ScriptedGrants()
    for builds in open_builds(make_roomy(settings), grants):
        first = builds.building("main")
        before = BuildSpec.from_json(builds.fetch_spec(first, builds.token_for(first)).json())
        deleted = builds.client.delete("/projects/web", headers=bearer(builds.user_token))
        made = builds.client.post(
            "/project", json={"name": "web", "repo": "octo/web"}, headers=bearer(builds.user_token)
        )
        second = builds.building("main")
        after = BuildSpec.from_json(builds.fetch_spec(second, builds.token_for(second)).json())

        assert (deleted.status_code, made.status_code) == (204, 201)
        assert before.cache_generation.isdigit()
        assert after.cache_generation.isdigit()
        assert after.cache_generation != before.cache_generation
        assert grants.cache_generations == [before.cache_generation, after.cache_generation]


def test_redeploy_without_cache_builds_the_same_commit_without_its_cache(client: Client) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    client.post("/ui/projects/my-site/deploy", data={"csrf": csrf, "ref": "main"})
    (first,) = deployment_ids(client, "my-site")
    queued_page = client.get(f"/deployments/{first}", headers=HTML).text
    make_ready(client, first, 5)
    page = client.get(f"/deployments/{first}", headers=HTML).text

    response = client.post(
        f"/ui/deployments/{first}/redeploy", data={"csrf": csrf}, follow_redirects=False
    )

    assert "Redeploy without cache" not in queued_page  # still building: nothing to redo
    assert "Redeploy without cache</button>" in page
    assert f'action="/ui/deployments/{first}/redeploy"' in page
    _, again = deployment_ids(client, "my-site")
    assert (response.status_code, response.headers["location"]) == (303, f"/deployments/{again}")
    rows = client.run(
        lambda: Deployment.select(
            Deployment.sha, Deployment.branch, Deployment.git_ref, Deployment.clear_cache
        ).order_by(Deployment.created_at)
    )
    assert rows[1]["clear_cache"] is True
    assert rows[0]["clear_cache"] is False
    assert (rows[1]["sha"], rows[1]["branch"], rows[1]["git_ref"]) == (
        rows[0]["sha"],
        rows[0]["branch"],
        rows[0]["git_ref"],
    )


def test_a_deployment_without_a_branch_cannot_be_redeployed_without_cache(
    client: Client,
) -> None:
    csrf = browser_signup(client)
    new_project(client, csrf)
    client.post("/ui/projects/my-site/deploy", data={"csrf": csrf, "ref": "main"})
    (first,) = deployment_ids(client, "my-site")
    make_ready(client, first, 5)
    client.run(
        lambda: Deployment.update({Deployment.branch: None, Deployment.git_ref: "v1.0"}).where(
            Deployment._meta.primary_key == first
        )
    )

    page = client.get(f"/deployments/{first}", headers=HTML).text
    refused = client.post(f"/ui/deployments/{first}/redeploy", data={"csrf": csrf})

    assert "Redeploy without cache" not in page
    assert refused.status_code == 409
    assert "Only a branch&#39;s deployment can be redeployed without cache" in refused.text
    assert deployment_ids(client, "my-site") == [first]
