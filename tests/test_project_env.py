"""A project's env vars: sealed, merged, limited, opened for a build; writes that race or fail."""

from __future__ import annotations

import pytest

from app.errors import UserError
from app.projects import envvars
from app.projects import service as projects
from app.projects.envvars import Sealer, SealError
from app.settings import Settings
from app.tables import EnvVar, Project
from tests.support.api import TEST_SECRET_KEY, Client, bearer, sign_up
from tests.support.projects import create


@pytest.fixture
def token(client: Client) -> str:
    return sign_up(client)


def test_env_values_are_sealed_to_their_project_and_name(client: Client, token: str) -> None:
    response = create(client, token, name="web", env={"API_KEY": "s3cr3t-value", "MODE": "prod"})

    assert response.json()["env"] == ["API_KEY", "MODE"]
    assert "s3cr3t-value" not in response.text
    rows = client.run(
        lambda: EnvVar.select(EnvVar.project, EnvVar.name, EnvVar.value_sealed).order_by(
            EnvVar.name
        )
    )
    sealer = Sealer(
        Settings.from_env({"SCALEMESH_SECRET_KEY": TEST_SECRET_KEY}).require_secret_keys()
    )
    project_id = response.json()["id"]
    api_key = bytes(rows[0]["value_sealed"])
    assert b"s3cr3t-value" not in api_key
    assert sealer.open(project_id, "API_KEY", api_key) == "s3cr3t-value"
    with pytest.raises(SealError):
        sealer.open(project_id + 1, "API_KEY", api_key)
    with pytest.raises(SealError):
        sealer.open(project_id, "MODE", api_key)


def test_patch_merges_env_vars(client: Client, token: str) -> None:
    create(client, token, name="web", env={"KEEP": "1", "REPLACE": "old", "DROP": "x"})

    response = client.patch(
        "/projects/web",
        json={"env": {"REPLACE": "new", "DROP": None, "ADD": "2"}},
        headers=bearer(token),
    )

    assert response.status_code == 200
    assert response.json()["env"] == ["ADD", "KEEP", "REPLACE"]
    project_id = response.json()["id"]
    sealer = Sealer(
        Settings.from_env({"SCALEMESH_SECRET_KEY": TEST_SECRET_KEY}).require_secret_keys()
    )
    rows = client.run(lambda: EnvVar.select(EnvVar.name, EnvVar.value_sealed))
    values = {r["name"]: sealer.open(project_id, r["name"], bytes(r["value_sealed"])) for r in rows}
    assert values == {"KEEP": "1", "REPLACE": "new", "ADD": "2"}


def test_too_many_env_vars_are_refused_as_a_whole(client: Client, token: str) -> None:
    create(client, token, name="web", env={"FIRST": "1"})

    response = client.patch(
        "/projects/web",
        json={"env": {f"VAR_{n}": "x" for n in range(200)}},
        headers=bearer(token),
    )

    assert response.status_code == 400
    assert "at most 200" in response.json()["detail"]
    assert client.get("/projects/web", headers=bearer(token)).json()["env"] == ["FIRST"]


def test_env_values_are_limited_in_bytes(client: Client, token: str) -> None:
    # 40,000 characters, 120,000 bytes of UTF-8: under the character limit, over the byte one.
    response = create(client, token, name="web", env={"BIG": "€" * 40_000})

    assert response.status_code == 400
    assert "larger than 64 KiB" in response.json()["detail"]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"A" * 256: "x"}, "is not valid"),
        ({"NUL": "a\x00b"}, "NUL character"),
        ({"HOME": "/root"}, "reserved"),
    ],
)
def test_env_rules(changes: dict[str, str], fragment: str) -> None:
    with pytest.raises(UserError) as caught:
        envvars.check_changes(changes)

    assert fragment in caught.value.detail


def test_sealer_refuses_an_unknown_version() -> None:
    sealer = Sealer(
        Settings.from_env({"SCALEMESH_SECRET_KEY": TEST_SECRET_KEY}).require_secret_keys()
    )
    sealed = sealer.seal(1, "A", "value")

    with pytest.raises(SealError, match="unknown seal version"):
        sealer.open(1, "A", b"\x07" + sealed[1:])


def test_a_projects_env_opens_for_its_build(client: Client, token: str) -> None:
    project_id = create(client, token, name="web", env={"A": "1", "B": "two"}).json()["id"]
    sealer = Sealer(
        Settings.from_env({"SCALEMESH_SECRET_KEY": TEST_SECRET_KEY}).require_secret_keys()
    )

    production = client.run(lambda: envvars.load(sealer, project_id, "production", "main"))
    preview = client.run(lambda: envvars.load(sealer, project_id, "preview", "main"))

    assert production.values == preview.values == {"A": "1", "B": "two"}
    assert production.scopes == {"A": "production", "B": "production"}
    assert preview.scopes == {"A": "preview", "B": "preview"}


def test_a_slug_taken_between_check_and_insert_is_a_409(
    client: Client, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(client, token, name="web")
    real_slug_taken = projects.slug_taken
    calls = 0

    async def stale_first_answer(slug: str) -> bool:
        # The first check runs before the other request's insert lands.
        nonlocal calls
        calls += 1
        return False if calls == 1 else await real_slug_taken(slug)

    monkeypatch.setattr(projects, "slug_taken", stale_first_answer)

    response = create(client, token, name="web")

    assert response.status_code == 409
    assert "was just taken; try the name 'web-2'" in response.json()["detail"]
    assert client.run(lambda: Project.count()) == 1


def test_a_failure_half_way_stores_nothing(
    client: Client, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(projects.envvars, "apply_changes", broken)

    response = create(client, token, name="web", env={"A": "1"})

    assert response.status_code == 500
    assert response.json()["error"] == "internal"
    assert "disk full" not in response.text
    assert client.run(lambda: Project.count()) == 0
