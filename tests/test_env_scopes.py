"""Env var scopes: set and shown through the API, and enforced in every build's spec: production
gets production's values, a preview gets preview's overridden by its branch's, a fork none."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.builds.specs import SpecMaker
from app.errors import UserError
from app.projects import envvars
from app.projects.envvars import Sealer, SealError
from app.projects.scopes import Scope, ScopeKind, for_build, parse_scope, parse_scopes
from app.settings import Settings
from app.tables import Deployment, EnvVar, Project
from builder.spec import BuildSpec
from tests.support.api import Client, bearer, sign_up
from tests.support.projects import create


@pytest.fixture
def token(client: Client) -> str:
    token = sign_up(client)
    assert create(client, token, name="web").status_code == 201
    return token


def put(client: Client, token: str, name: str, value: str, *scopes: str, slug: str = "web") -> Any:
    return client.put(
        f"/projects/{slug}/env/{name}",
        json={"value": value, "scopes": list(scopes)},
        headers=bearer(token),
    )


def opened(client: Client, settings: Settings) -> dict[tuple[str, str], str]:
    """Every stored value, opened: (name, scope label) → value."""
    sealer = Sealer(settings.require_secret_keys())
    rows = client.run(lambda: EnvVar.select())
    return {
        (row["name"], Scope(ScopeKind(row["scope"]), row["git_branch"]).label): sealer.open(
            row["project"], row["name"], bytes(row["value_sealed"])
        )
        for row in rows
    }


def spec_of(
    client: Client, settings: Settings, target: str, branch: str | None, *, fork: bool = False
) -> BuildSpec:
    """The spec the reconcile loop would make for a deployment of `web` of this kind."""
    deployment_id = uuid.uuid4()

    async def make() -> BuildSpec:
        project = await Project.select(Project.id).where(Project.slug == "web").first()
        assert project is not None
        await Deployment.insert(
            Deployment(
                id=deployment_id,
                project=project["id"],
                sha="a" * 40,
                git_ref=branch or "v1.0",
                branch=branch,
                target=target,
                from_fork=fork,
            )
        )
        maker = SpecMaker(settings, Sealer(settings.require_secret_keys()), None)
        return await maker.make(str(deployment_id))

    return client.run(make)


SCOPED = {
    # name: [(value, scopes)]
    "API_URL": [("https://api", ("production",)), ("https://preview-api", ("preview",))],
    "EVERYWHERE": [("1", ())],
    "PREVIEW_ONLY": [("p", ("preview",))],
    "STAGING_ONLY": [("s", ("branch:staging",))],
    "FLAG": [("off", ("preview",)), ("on", ("branch:staging", "branch:next"))],
}


@pytest.fixture
def scoped(client: Client, token: str) -> str:
    for name, settings in SCOPED.items():
        for value, scopes in settings:
            response = put(client, token, name, value, *scopes)
            assert response.status_code == 200, response.text
    return token


# --- the API ------------------------------------------------------------------------------------


def test_a_name_holds_one_value_per_scope_and_values_are_never_shown(
    client: Client, settings: Settings, scoped: str
) -> None:
    listed = client.get("/projects/web/env", headers=bearer(scoped))
    project = client.get("/projects/web", headers=bearer(scoped)).json()

    assert listed.status_code == 200
    assert listed.json() == [
        {"name": "API_URL", "scopes": ["production", "preview"]},
        {"name": "EVERYWHERE", "scopes": ["production", "preview"]},
        {"name": "FLAG", "scopes": ["preview", "branch:next", "branch:staging"]},
        {"name": "PREVIEW_ONLY", "scopes": ["preview"]},
        {"name": "STAGING_ONLY", "scopes": ["branch:staging"]},
    ]
    assert project["env"] == ["API_URL", "EVERYWHERE", "FLAG", "PREVIEW_ONLY", "STAGING_ONLY"]
    assert project["env_scopes"] == {var["name"]: var["scopes"] for var in listed.json()}
    for value in ("https://api", "https://preview-api", "off"):
        assert value not in listed.text
        assert value not in str(project)
    assert opened(client, settings) == {
        ("API_URL", "production"): "https://api",
        ("API_URL", "preview"): "https://preview-api",
        ("EVERYWHERE", "production"): "1",
        ("EVERYWHERE", "preview"): "1",
        ("FLAG", "preview"): "off",
        ("FLAG", "branch:staging"): "on",
        ("FLAG", "branch:next"): "on",
        ("PREVIEW_ONLY", "preview"): "p",
        ("STAGING_ONLY", "branch:staging"): "s",
    }


def test_setting_a_scope_replaces_only_that_scopes_value(
    client: Client, settings: Settings, scoped: str
) -> None:
    answer = put(client, scoped, "API_URL", "https://api-v2", "production", "branch:staging")
    patched = client.patch(
        "/projects/web", json={"env": {"EVERYWHERE": "2"}}, headers=bearer(scoped)
    )

    assert answer.status_code == 200
    assert answer.json() == {
        "name": "API_URL",
        "scopes": ["production", "preview", "branch:staging"],
    }
    assert patched.status_code == 200
    values = opened(client, settings)
    assert values["API_URL", "production"] == "https://api-v2"
    assert values["API_URL", "preview"] == "https://preview-api"
    assert values["API_URL", "branch:staging"] == "https://api-v2"
    assert (values["EVERYWHERE", "production"], values["EVERYWHERE", "preview"]) == ("2", "2")


def test_a_name_is_deleted_from_some_scopes_or_all(client: Client, scoped: str) -> None:
    one = client.delete(
        "/projects/web/env/FLAG?scope=branch:next&scope=preview", headers=bearer(scoped)
    )
    every = client.delete("/projects/web/env/API_URL", headers=bearer(scoped))
    patched = client.patch("/projects/web", json={"env": {"FLAG": None}}, headers=bearer(scoped))
    again = client.delete("/projects/web/env/API_URL", headers=bearer(scoped))
    elsewhere = client.delete(
        "/projects/web/env/PREVIEW_ONLY?scope=production", headers=bearer(scoped)
    )

    assert (one.status_code, every.status_code, patched.status_code) == (204, 204, 200)
    assert patched.json()["env_scopes"] == {
        "EVERYWHERE": ["production", "preview"],
        "PREVIEW_ONLY": ["preview"],
        "STAGING_ONLY": ["branch:staging"],
    }
    assert again.status_code == 404
    assert again.json() == {"error": "not_found", "detail": "web has no env var API_URL."}
    assert elsewhere.status_code == 404
    assert elsewhere.json()["detail"] == "web has no env var PREVIEW_ONLY in production."


@pytest.mark.parametrize(
    ("scopes", "code", "fragment"),
    [
        (["prod"], "env_scope_invalid", "'prod' is not an env var scope"),
        (["branch"], "env_scope_invalid", "use production, preview or branch:<name>"),
        (["Production"], "env_scope_invalid", "'Production' is not an env var scope"),
        (["branch:"], "env_branch_invalid", "'' is not a valid branch name"),
        (["branch:a b"], "env_branch_invalid", "'a b' is not a valid branch name"),
        (["branch:-x"], "env_branch_invalid", "'-x' is not a valid branch name"),
        (["preview", "branch:x..y"], "env_branch_invalid", "'x..y' is not a valid branch"),
    ],
)
def test_bad_scopes_are_refused_and_nothing_is_stored(
    client: Client, token: str, scopes: list[str], code: str, fragment: str
) -> None:
    response = put(client, token, "API_URL", "x", *scopes)
    deleted = client.delete(
        "/projects/web/env/API_URL", params={"scope": scopes}, headers=bearer(token)
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert fragment in response.json()["detail"]
    assert deleted.json() == response.json()
    assert client.run(lambda: EnvVar.count()) == 0
    with pytest.raises(UserError) as caught:
        parse_scopes(scopes)
    assert caught.value.code == code


def test_env_vars_need_push_access_and_names_follow_the_rules(client: Client, token: str) -> None:
    other = sign_up(client, "eve@example.com")

    stranger = put(client, other, "API_URL", "x", "production")
    reserved = put(client, token, "SCALEMESH_TOKEN", "x", "preview")
    unknown = client.put(
        "/projects/web/env/A", json={"value": "x", "scope": ["preview"]}, headers=bearer(token)
    )

    assert stranger.status_code == 404
    assert client.get("/projects/web/env", headers=bearer(other)).status_code == 404
    assert client.delete("/projects/web/env/A", headers=bearer(other)).status_code == 404
    assert reserved.status_code == 400
    assert "reserved by Scale Mesh" in reserved.json()["detail"]
    assert unknown.status_code == 400
    assert client.run(lambda: EnvVar.count()) == 0


def test_values_across_scopes_are_limited(
    client: Client, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(envvars, "MAX_VALUES", 3)
    put(client, token, "A", "1")

    refused = put(client, token, "B", "1", "production", "preview")

    assert refused.status_code == 400
    assert "at most 3 env var values across its scopes" in refused.json()["detail"]
    assert client.get("/projects/web/env", headers=bearer(token)).json() == [
        {"name": "A", "scopes": ["production", "preview"]}
    ]


# --- what each build gets -----------------------------------------------------------------------


def test_a_production_build_gets_production_values_only(
    client: Client, settings: Settings, scoped: str
) -> None:
    for branch in ("main", "staging"):
        spec = spec_of(client, settings, "production", branch)

        assert spec.env == {"API_URL": "https://api", "EVERYWHERE": "1"}
        assert spec.env_scopes == {"API_URL": "production", "EVERYWHERE": "production"}


def test_a_preview_gets_preview_values_overridden_by_its_branchs(
    client: Client, settings: Settings, scoped: str
) -> None:
    staging = spec_of(client, settings, "preview", "staging")
    other = spec_of(client, settings, "preview", "feature/x")
    tag = spec_of(client, settings, "preview", None)

    assert staging.env == {
        "API_URL": "https://preview-api",
        "EVERYWHERE": "1",
        "FLAG": "on",
        "PREVIEW_ONLY": "p",
        "STAGING_ONLY": "s",
    }
    assert staging.env_scopes == {
        "API_URL": "preview",
        "EVERYWHERE": "preview",
        "FLAG": "branch:staging",
        "PREVIEW_ONLY": "preview",
        "STAGING_ONLY": "branch:staging",
    }
    preview_only = {
        "API_URL": "https://preview-api",
        "EVERYWHERE": "1",
        "FLAG": "off",
        "PREVIEW_ONLY": "p",
    }
    assert other.env == preview_only
    assert set(other.env_scopes.values()) == {"preview"}
    assert tag.env == preview_only


def test_a_forks_build_gets_no_env_vars_in_any_scope(
    client: Client, settings: Settings, scoped: str
) -> None:
    for target, branch in (("preview", "staging"), ("preview", "main"), ("production", "main")):
        spec = spec_of(client, settings, target, branch, fork=True)

        assert (spec.env, spec.env_scopes) == ({}, {})


def test_a_sealed_value_moved_to_another_projects_scope_row_does_not_open(
    client: Client, settings: Settings, scoped: str
) -> None:
    assert create(client, scoped, name="other").status_code == 201
    put(client, scoped, "API_URL", "mine", "branch:staging", slug="other")

    async def move() -> None:
        # Someone with write access to the database copies web's production value into
        # the other project's row for the same name and another scope.
        web = await EnvVar.select(EnvVar.value_sealed).where(
            (EnvVar.name == "API_URL") & (EnvVar.scope == "production")
        )
        await EnvVar.update({EnvVar.value_sealed: web[0]["value_sealed"]}).where(
            (EnvVar.name == "API_URL") & (EnvVar.git_branch == "staging")
        )

    client.run(move)
    other_id = client.get("/projects/other", headers=bearer(scoped)).json()["id"]

    with pytest.raises(SealError, match="env var API_URL does not open"):
        client.run(lambda: envvars.load(Sealer(settings.require_secret_keys()), other_id,
                                        "preview", "staging"))  # fmt: skip


# --- scopes as people write them ----------------------------------------------------------------


def test_scopes_are_read_ordered_and_chosen_per_build() -> None:
    assert parse_scope("branch:feature/x") == Scope(ScopeKind.BRANCH, "feature/x")
    assert parse_scope("branch:feature/x").label == "branch:feature/x"
    assert [s.label for s in parse_scopes(["branch:b", "preview", "branch:a", "preview"])] == [
        "preview",
        "branch:a",
        "branch:b",
    ]
    assert for_build("production", "main") == (Scope(ScopeKind.PRODUCTION),)
    assert for_build("preview", "") == (Scope(ScopeKind.PREVIEW),)
    assert for_build("preview", "x") == (Scope(ScopeKind.PREVIEW), Scope(ScopeKind.BRANCH, "x"))
    with pytest.raises(UserError):
        parse_scope("branch:a:b")
