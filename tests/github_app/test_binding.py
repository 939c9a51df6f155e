"""Bindings: only a project bound to a repository's id is built from GitHub, gets a token and
speaks on GitHub; a project that merely names a repository the App covers gets none of that."""

from __future__ import annotations

from typing import Any

from app.tables import Deployment, Project, Repository
from tests.support.api import bearer, sign_up
from tests.support.binding import bind
from tests.support.deployments import tick
from tests.support.github_app import PR_SHA, PUSH_SHA, App, pr_event
from tests.support.webhooks import INSTALLATION, REPO, REPO_ID, payload

TOKENS = f"/app/installations/{INSTALLATION}/access_tokens"
RENAMED = "Codertocat/Hello-Mesh"


def stranger(app: App, name: str = "evil", repo: str = REPO) -> str:
    """Mallory's account, with a project on `repo` made by the API as a password user."""
    token = sign_up(app.client, "mallory@example.com")
    response = app.client.post(
        "/project",
        json={"name": name, "repo": repo, "production_branch": "main"},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    return token


def contexts(app: App, repository: str = REPO) -> set[str]:
    """Every commit status context sent on the repository."""
    return {
        call.json["context"]
        for call in app.github.calls
        if call.method == "POST" and call.path.startswith(f"/repos/{repository}/statuses/")
    }


def deployments_of(app: App, slug: str) -> list[dict[str, Any]]:
    return [
        row
        for row in app.client.run(
            lambda: Deployment.select(Deployment.all_columns(), Deployment.project.slug).order_by(
                Deployment.created_at
            )
        )
        if row["project.slug"] == slug
    ]


def project_row(app: App, slug: str) -> dict[str, Any]:
    row: dict[str, Any] | None = app.client.run(
        lambda: (
            Project.select(Project.github_repository, Project.git_url, Project.github_repository_id)
            .where(Project.slug == slug)
            .first()
        )
    )
    assert row is not None
    return row


def test_an_unbound_project_on_a_covered_repository_is_neither_built_nor_given_a_token(
    app: App,
) -> None:
    token = stranger(app)
    assert app.deliver("installation", payload("installation.created")).status_code == 202
    private = payload("push.commits")
    private["repository"]["private"] = True

    app.deliver("push", private)
    app.deliver("pull_request", pr_event("opened"))
    app.settle()
    assert app.deployments() == []

    # Nor by hand: the repository is on the App, and nobody with push access linked it.
    response = app.client.post("/deploy", json={"project": "evil"}, headers=bearer(token))
    assert response.status_code == 403, response.text
    assert "link this project" in response.json()["detail"]
    tick(app.client)
    app.report()
    assert app.deployments() == []
    assert app.github.calls_to("POST", TOKENS) == []
    assert app.github.tokens == []
    assert app.github.calls == []  # no status, no GitHub Deployment, no comment


def test_only_the_bound_project_builds_and_reports_next_to_a_same_name_project(
    app: App, token: str
) -> None:
    stranger(app)
    stranger_token = sign_up(app.client, "eve@example.com")
    app.client.post(
        "/project", json={"name": "other", "repo": REPO}, headers=bearer(stranger_token)
    )
    bind(app.client, "other", 42)  # bound, but to another repository that had this name

    app.deliver("push", payload("push.commits"))
    app.deliver("pull_request", pr_event("opened"))
    assert {row["project.slug"] for row in deployments_of(app, "web")} == {"web"}
    assert deployments_of(app, "evil") == deployments_of(app, "other") == []
    assert [row["sha"] for row in app.deployments()] == [PUSH_SHA, PR_SHA]

    # A deployment of the stranger's on the pull request (made any other way) stays off GitHub.
    web = deployments_of(app, "web")[-1]
    evil_id = app.client.run(
        lambda: Project.select(Project._meta.primary_key).where(Project.slug == "evil").first()
    )["id"]
    app.client.run(
        lambda: Deployment.insert(
            Deployment(
                project=evil_id,
                sha=PR_SHA,
                git_ref="changes",
                branch="changes",
                pr_number=2,
                target="preview",
                state="queued",
                report_pending=True,
            )
        )
    )
    app.settle()
    tick(app.client)
    app.build(str(web["id"]))

    assert contexts(app) == {"scalemesh/web"}
    [comment] = app.github.comments_on(REPO, 2)
    assert "**web**" in comment.body
    assert "**evil**" not in comment.body
    created = app.github.calls_to("POST", f"/repos/{REPO}/deployments")
    assert {call.json["description"].split(":")[0] for call in created} == {"web"}
    [evil] = deployments_of(app, "evil")
    assert evil["reported_phase"] == "unreported"
    # Only the bound project's builds got tokens, and only for its repository.
    minted = [call.json for call in app.github.calls_to("POST", TOKENS) if call.json]
    assert minted
    assert all(body["repositories"] == ["Hello-World"] for body in minted)
    evil_spec = app.runner.spec_of(str(evil["id"]))
    assert evil_spec.token == ""
    web_tokens = {app.runner.spec_of(str(row["id"])).token for row in deployments_of(app, "web")}
    assert "" not in web_tokens


def test_a_bound_project_whose_id_is_not_covered_gets_no_token(app: App, token: str) -> None:
    """The name is covered, but the repository bound is another one (deleted, then the name
    reused): no token, no build from the new repository's pushes."""
    bind(app.client, "web", 42)
    app.deliver("push", payload("push.commits"))
    assert app.deployments() == []
    response = app.client.post("/deploy", json={"project": "web"}, headers=bearer(token))
    tick(app.client)
    app.report()
    assert app.runner.spec_of(response.json()["id"]).token == ""
    assert app.github.calls_to("POST", TOKENS) == []
    assert contexts(app) == set()


def test_a_renamed_repository_keeps_its_binding_and_the_new_name_is_stored(
    app: App, token: str
) -> None:
    stranger(app, "squatter", RENAMED)  # took the new name before the rename was seen
    push = payload("push.commits")
    push["repository"].update(
        full_name=RENAMED,
        name="Hello-Mesh",
        clone_url=f"https://github.com/{RENAMED}.git",
    )
    app.deliver("push", push)

    [deployment] = app.deployments()
    assert deployments_of(app, "web")[0]["id"] == deployment["id"]
    assert deployments_of(app, "squatter") == []
    assert project_row(app, "web") == {
        "github_repository": RENAMED,
        "git_url": f"https://github.com/{RENAMED}.git",
        "github_repository_id": REPO_ID,
    }
    assert project_row(app, "squatter")["github_repository_id"] is None
    shown = app.client.get("/projects/web", headers=bearer(token)).json()
    assert shown["github_repository"] == RENAMED
    assert app.client.run(lambda: Repository.select(Repository.full_name)) == [
        {"full_name": RENAMED}
    ]

    tick(app.client)
    app.report()
    spec = app.runner.spec_of(str(deployment["id"]))
    assert spec.git_url == f"https://github.com/{RENAMED}.git"
    [mint] = [call.json for call in app.github.calls_to("POST", TOKENS) if call.json]
    assert mint["repositories"] == ["Hello-Mesh"]
    assert spec.token != ""
    assert spec.token in {minted.token for minted in app.github.tokens}
    assert contexts(app, RENAMED) == {"scalemesh/web"}
    assert contexts(app) == set()


def test_a_closed_pull_request_after_a_rename_retires_the_bound_previews(
    app: App, token: str
) -> None:
    app.deliver("pull_request", pr_event("opened"))
    closed = payload("pull_request.closed")
    closed["repository"]["full_name"] = RENAMED
    app.deliver("pull_request", closed)
    [row] = app.deployments()
    assert row["retired"] is True
    assert project_row(app, "web")["github_repository"] == RENAMED


def test_an_installation_listing_the_repository_under_a_new_name_renames_bound_projects(
    app: App, token: str
) -> None:
    stranger(app)  # unbound, on the old name: not renamed
    added = payload("installation_repositories.added")
    added["repositories_added"][0].update(id=REPO_ID, full_name=RENAMED, name="Hello-Mesh")
    app.deliver("installation_repositories", added)
    assert project_row(app, "web")["github_repository"] == RENAMED
    assert project_row(app, "web")["git_url"] == f"https://github.com/{RENAMED}.git"
    assert project_row(app, "evil")["github_repository"] == REPO
