"""Projects through the HTTP API: create, list, show, change, delete, and whose they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.logs.archive import archive_key
from app.settings import Settings
from app.storage import StorageError
from app.storage.choice import storage_from_settings
from app.storage.local import LocalStorage
from app.tables import Alias, Deployment, EnvVar, Project
from builder.cache_keys import cache_key, cache_prefix
from builder.spec import output_prefix
from tests.support.admins import make_admin
from tests.support.api import Client, bearer, sign_up
from tests.support.projects import create


@pytest.fixture
def token(client: Client) -> str:
    return sign_up(client)


def test_create_derives_the_slug_and_the_production_url(client: Client, token: str) -> None:
    response = create(client, token, name="My Site!")

    assert response.status_code == 201
    project = response.json()
    assert project["slug"] == "my-site"
    assert project["name"] == "My Site!"
    assert project["repo"] == "octocat/hello-world"
    assert project["github_repository"] == "octocat/hello-world"
    assert project["git_url"] == "https://github.com/octocat/hello-world.git"
    assert project["production_branch"] == "main"
    assert project["production_url"] == "http://my-site.localhost:8080"
    for auto_detected in ("root_directory", "install_command", "build_command", "output_directory"):
        assert project[auto_detected] is None
    stored = client.run(lambda: Project.select(Project.slug, Project.owner.email))
    assert stored == [{"slug": "my-site", "owner.email": "ada@example.com"}]


def test_create_keeps_build_settings(client: Client, token: str) -> None:
    response = create(
        client,
        token,
        name="docs",
        repo="https://gitlab.example.com/team/docs.git",
        production_branch="refs/heads/release/v2",
        root_directory="./apps/docs/",
        install_command="pnpm install --frozen-lockfile",
        build_command="pnpm run build -- --mode 'production'",
        output_directory="dist",
        allow_fork_builds=True,
    )

    assert response.status_code == 201
    project = response.json()
    assert project["repo"] == "https://gitlab.example.com/team/docs.git"
    assert project["github_repository"] is None
    assert project["production_branch"] == "release/v2"
    assert project["root_directory"] == "apps/docs"
    assert project["install_command"] == "pnpm install --frozen-lockfile"
    assert project["build_command"] == "pnpm run build -- --mode 'production'"
    assert project["output_directory"] == "dist"
    assert project["allow_fork_builds"] is True


def test_a_taken_slug_is_a_409_suggesting_a_free_one(client: Client, token: str) -> None:
    create(client, token, name="Web")
    create(client, token, name="web-2")

    response = create(client, token, name="WEB")

    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert "'web-3'" in response.json()["detail"]
    assert client.run(lambda: Project.count()) == 2


def test_another_users_slug_is_taken_too(client: Client, token: str) -> None:
    create(client, token, name="web")
    other = sign_up(client, "bob@example.com")

    response = create(client, other, name="web")

    assert response.status_code == 409
    assert "'web-2'" in response.json()["detail"]


def test_reserved_slugs_are_refused(client: Client, token: str) -> None:
    response = create(client, token, name="API")

    assert response.status_code == 409
    assert "'api-2'" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "!!!"}, "needs at least one letter or digit"),
        ({"name": ""}, "1 to 100 characters"),
        ({"name": "web", "repo": "git@github.com:o/r.git"}, "SSH URLs are not supported"),
        ({"name": "web", "repo": "not a repo"}, "is not owner/name or a git URL"),
        ({"name": "web", "production_branch": "feature..x"}, "not a valid git branch"),
        ({"name": "web", "root_directory": "../etc"}, "a path inside the repository"),
        ({"name": "web", "output_directory": "/var/www"}, "a path inside the repository"),
        ({"name": "web", "build_command": "npm run 'build"}, "cannot be split"),
        ({"name": "web", "env": {"1BAD": "x"}}, "is not valid"),
        ({"name": "web", "env": {"AWS_SECRET_ACCESS_KEY": "x"}}, "reserved"),
        ({"name": "web", "env": {"A": 1}}, "env[...]: Expected `str`"),
        ({"name": "web", "owner": 2}, "unknown field `owner`"),
        ({"repo": "o/r"}, "missing required field `name`"),
    ],
)
def test_create_explains_bad_input_and_stores_nothing(
    client: Client, token: str, body: dict[str, Any], fragment: str
) -> None:
    response = create(client, token, **body)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert fragment in response.json()["detail"]
    assert client.run(lambda: Project.count()) == 0
    assert client.run(lambda: EnvVar.count()) == 0


def test_projects_need_a_signed_in_user(client: Client) -> None:
    for method, path in [
        ("POST", "/project"),
        ("GET", "/projects"),
        ("GET", "/projects/web"),
        ("PATCH", "/projects/web"),
        ("DELETE", "/projects/web"),
    ]:
        response = client.request(method, path, json={"name": "web", "repo": "o/r"})
        assert response.status_code == 401, (method, path)
        assert response.json()["error"] == "unauthorized"


def test_list_shows_only_the_callers_projects(client: Client, token: str) -> None:
    create(client, token, name="b-site")
    create(client, token, name="a-site", env={"TOKEN": "v"})
    other = sign_up(client, "bob@example.com")
    create(client, other, name="bobs")

    mine = client.get("/projects", headers=bearer(token))
    theirs = client.get("/projects", headers=bearer(other))

    assert [p["slug"] for p in mine.json()] == ["a-site", "b-site"]
    assert mine.json()[0]["env"] == ["TOKEN"]
    assert [p["slug"] for p in theirs.json()] == ["bobs"]


def test_show_returns_the_project(client: Client, token: str) -> None:
    created = create(client, token, name="web", env={"K": "v"}).json()

    response = client.get("/projects/web", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == created


def test_someone_elses_project_is_not_found(client: Client, token: str) -> None:
    create(client, token, name="web", env={"K": "v"})
    other = sign_up(client, "bob@example.com")

    for method in ("GET", "PATCH", "DELETE"):
        response = client.request(
            method, "/projects/web", json={"name": "x"}, headers=bearer(other)
        )
        assert response.status_code == 404, method
        assert response.json()["error"] == "not_found"
    stored = client.run(lambda: Project.select(Project.name))
    assert stored == [{"name": "web"}]


def test_patch_changes_only_what_is_given(client: Client, token: str) -> None:
    create(client, token, name="web", build_command="make site", output_directory="public")

    response = client.patch(
        "/projects/web",
        json={"name": "Web Site", "production_branch": "trunk", "build_command": None},
        headers=bearer(token),
    )

    assert response.status_code == 200
    project = response.json()
    assert project["name"] == "Web Site"
    assert project["slug"] == "web"  # URLs stay put when a project is renamed
    assert project["production_branch"] == "trunk"
    assert project["build_command"] is None
    assert project["output_directory"] == "public"
    assert project["updated_at"] > project["created_at"]


def test_patch_changes_the_repository(client: Client, token: str) -> None:
    create(client, token, name="web")

    response = client.patch(
        "/projects/web", json={"repo": "https://github.com/acme/web"}, headers=bearer(token)
    )

    assert response.json()["github_repository"] == "acme/web"
    assert response.json()["git_url"] == "https://github.com/acme/web.git"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "   "}, "1 to 100 characters"),
        ({"repo": "ssh://git@host/r.git"}, "SSH URLs"),
        ({"env": {"CI": "false"}}, "reserved"),
        ({"allow_fork_builds": "yes"}, "Expected `bool"),
        ({"slug": "new"}, "unknown field `slug`"),
        ({"preview_ttl_days": 0}, "Expected `int` >= 1"),
        ({"preview_ttl_days": 3651}, "Expected `int` <= 3650"),
    ],
)
def test_patch_explains_bad_input_and_changes_nothing(
    client: Client, token: str, body: dict[str, Any], fragment: str
) -> None:
    before = create(client, token, name="web", env={"A": "1"}).json()

    response = client.patch("/projects/web", json=body, headers=bearer(token))

    assert response.status_code == 400
    assert fragment in response.json()["detail"]
    assert client.get("/projects/web", headers=bearer(token)).json() == before


def test_patch_sets_fork_builds(client: Client, token: str) -> None:
    create(client, token, name="web")

    response = client.patch(
        "/projects/web", json={"allow_fork_builds": True}, headers=bearer(token)
    )

    assert response.json()["allow_fork_builds"] is True


def test_a_previews_time_to_live_is_set_and_cleared(client: Client, token: str) -> None:
    created = create(client, token, name="web", preview_ttl_days=14).json()

    cleared = client.patch("/projects/web", json={"preview_ttl_days": None}, headers=bearer(token))
    kept = client.patch("/projects/web", json={"name": "Web"}, headers=bearer(token))
    again = client.patch("/projects/web", json={"preview_ttl_days": 3}, headers=bearer(token))

    assert created["preview_ttl_days"] == 14
    assert cleared.json()["preview_ttl_days"] is None
    assert kept.json()["preview_ttl_days"] is None
    assert again.json()["preview_ttl_days"] == 3
    stored = client.run(lambda: Project.select(Project.preview_ttl_days))
    assert stored == [{"preview_ttl_days": 3}]


def test_delete_removes_the_project_and_everything_under_it(
    client: Client, token: str, settings: Settings
) -> None:
    project_id = create(client, token, name="web", env={"A": "1"}).json()["id"]
    storage = storage_from_settings(settings.storage)
    someone_elses = output_prefix(project_id + 1, "other") + "index.html"

    async def add_deployment() -> None:
        rows = await Deployment.insert(Deployment(project=project_id, sha="a" * 40))
        await Alias.insert(Alias(hostname="web", project=project_id, deployment=rows[0]["id"]))
        deployment_id = str(rows[0]["id"])
        await storage.put(output_prefix(project_id, deployment_id) + "index.html", b"<h1>hi")
        await storage.put(output_prefix(project_id, deployment_id) + "a/b.js", b"1")
        await storage.put(archive_key(deployment_id), b"{}\n")
        await storage.put(someone_elses, b"keep")

    client.run(add_deployment)

    response = client.delete("/projects/web", headers=bearer(token))

    assert response.status_code == 204
    assert client.get("/projects/web", headers=bearer(token)).status_code == 404
    for table in (Project, EnvVar, Deployment, Alias):
        assert client.run(lambda table=table: table.count()) == 0  # type: ignore[misc]
    # Its files and build logs went with it; another project's stayed.
    assert client.run(lambda: storage.list("")) == [someone_elses]


def test_delete_succeeds_when_storage_cannot_delete_the_files(
    client: Client,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    create(client, token, name="web")

    async def refuse(self: LocalStorage, prefix: str) -> int:
        raise StorageError(f"cannot delete under {prefix}: permission denied")

    monkeypatch.setattr(LocalStorage, "delete_prefix", refuse)

    response = client.delete("/projects/web", headers=bearer(token))

    assert response.status_code == 204
    assert client.get("/projects/web", headers=bearer(token)).status_code == 404
    [warning] = [r for r in caplog.records if r.getMessage() == "project files not deleted"]
    assert "permission denied" in warning.__dict__["error"]


def test_a_deleted_projects_build_caches_go_with_it_and_never_reach_the_next_project(
    client: Client, token: str, settings: Settings
) -> None:
    # Its dependencies (private packages too): nothing else deletes them, and SQLite gives the
    # id to the next project made once the newest one is deleted.
    project_id = create(client, token, name="web").json()["id"]
    storage = storage_from_settings(settings.storage)
    others = cache_key(project_id + 10, "main")

    async def cache_builds() -> None:
        for branch in ("main", "feature/x"):
            await storage.put(cache_key(project_id, branch), b"private node_modules")
        await storage.put(others, b"keep")

    client.run(cache_builds)

    deleted = client.delete("/projects/web", headers=bearer(token))
    bob = sign_up(client, "bob@example.com")
    next_id = create(client, bob, name="next").json()["id"]

    assert deleted.status_code == 204
    assert client.run(lambda: storage.list(cache_prefix(project_id))) == []
    assert client.run(lambda: storage.list(cache_prefix(next_id))) == []
    assert client.run(lambda: storage.get(others)) == b"keep"


def test_a_project_whose_build_caches_cannot_be_deleted_stays(
    client: Client, token: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id = create(client, token, name="web").json()["id"]
    storage = storage_from_settings(settings.storage)
    client.run(lambda: storage.put(cache_key(project_id, "main"), b"cache"))

    async def refuse(self: LocalStorage, *keys: str) -> None:
        raise StorageError("cannot delete: permission denied")

    monkeypatch.setattr(LocalStorage, "delete", refuse)

    response = client.delete("/projects/web", headers=bearer(token))

    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    assert client.get("/projects/web", headers=bearer(token)).status_code == 200
    assert client.run(lambda: storage.list(cache_prefix(project_id))) != []


def test_an_alias_name_is_not_available_as_a_slug(client: Client, token: str) -> None:
    project_id = create(client, token, name="web").json()["id"]

    async def add_branch_alias() -> None:
        rows = await Deployment.insert(Deployment(project=project_id, sha="a" * 40))
        await Alias.insert(
            Alias(hostname="web-git-main", project=project_id, deployment=rows[0]["id"])
        )

    client.run(add_branch_alias)

    response = create(client, token, name="web git main")

    # Refused before the clash is looked up: `-git-` is kept for branch labels.
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "-git-" in response.json()["detail"]


def test_file_urls_work_with_the_local_runner(client: Client, token: str, tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    client.run(lambda: make_admin("ada@example.com"))  # only the admin may use this disk

    response = create(client, token, name="local", repo=f"file://{tmp_path / 'repo'}")
    missing = create(client, token, name="gone", repo=f"file://{tmp_path / 'gone'}")

    assert response.status_code == 201
    assert response.json()["repo"] == f"file://{tmp_path / 'repo'}"
    assert missing.status_code == 400
    assert "no git repository at" in missing.json()["detail"]
