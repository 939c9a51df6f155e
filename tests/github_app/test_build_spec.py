"""A builder's spec fetch with the App installed: a clone token minted for the fetch itself, and
a clear refusal when GitHub will not give one for a private repository."""

from __future__ import annotations

from datetime import timedelta

from app.builds.tokens import BuildTokens
from app.tables import BuildToken
from builder.spec import BuildSpec
from tests.support.api import bearer
from tests.support.deployments import FakeRunner, tick
from tests.support.github_app import App
from tests.support.webhooks import payload

ACCESS_TOKENS = "access_tokens"


def building_private(app: App) -> tuple[str, str]:
    body = payload("push.commits")
    body["repository"]["private"] = True
    app.deliver("push", body)
    tick(app.client)
    [deployment] = app.deployments()
    assert deployment["state"] == "building"
    deployment_id = str(deployment["id"])
    token = app.client.run(lambda: BuildTokens().issue(deployment_id, timedelta(minutes=5)))
    return deployment_id, token


def test_the_fetched_spec_clones_with_a_token_of_its_own(
    app: App, token: str, runner: FakeRunner
) -> None:
    deployment_id, build_token = building_private(app)

    response = app.client.post(
        f"/internal/builds/{deployment_id}/spec", headers=bearer(build_token)
    )

    assert response.status_code == 200, response.text
    spec = BuildSpec.from_json(response.json())
    started = runner.spec_of(deployment_id)
    minted = [t.token for t in app.github.tokens if t.repositories == ["Hello-World"]]
    assert minted == [started.token, spec.token]
    assert spec.token != started.token
    assert spec.git_url == started.git_url


def test_a_private_repository_without_a_token_is_refused_at_the_fetch(app: App, token: str) -> None:
    deployment_id, build_token = building_private(app)
    app.github.fail(ACCESS_TOKENS, status=422, body={"message": "repository not accessible"})

    response = app.client.post(
        f"/internal/builds/{deployment_id}/spec", headers=bearer(build_token)
    )

    assert response.status_code == 409, response.text
    assert "no token to clone the private repository" in response.json()["detail"]


def test_a_token_github_cannot_mint_just_now_is_asked_for_again_by_the_builder(
    app: App, token: str
) -> None:
    deployment_id, build_token = building_private(app)
    app.github.fail(ACCESS_TOKENS, status=502, times=1)
    url = f"/internal/builds/{deployment_id}/spec"

    busy = app.client.post(url, headers=bearer(build_token))
    again = app.client.post(url, headers=bearer(build_token))

    assert busy.status_code == 503, busy.text  # the builder retries 5xx answers
    assert "just now" in busy.json()["detail"]
    assert again.status_code == 200, again.text
    assert BuildSpec.from_json(again.json()).token


def mint_requests(app: App) -> int:
    return sum(call.path.endswith("/access_tokens") for call in app.github.calls)


def test_a_build_token_cannot_fetch_another_builds_spec_even_while_github_is_busy(
    app: App, token: str
) -> None:
    deployment_id, build_token = building_private(app)
    body = payload("push.commits")
    body["repository"]["private"] = True
    body["ref"], body["after"] = "refs/heads/other", "d" * 40
    app.deliver("push", body)
    other_id = next(str(d["id"]) for d in app.deployments() if str(d["id"]) != deployment_id)
    app.client.run(lambda: BuildTokens().issue(other_id, timedelta(minutes=5)))
    app.github.fail(ACCESS_TOKENS, status=502)
    asked = mint_requests(app)

    response = app.client.post(f"/internal/builds/{other_id}/spec", headers=bearer(build_token))

    assert response.status_code == 403, response.text  # not the 503 that says "ask again"
    assert mint_requests(app) == asked  # GitHub was not asked for a token for the other build
    fetched = app.client.run(
        lambda: (
            BuildToken.select(BuildToken.spec_fetched_at)
            .where(BuildToken.deployment == other_id)
            .first()
        )
    )
    assert fetched == {"spec_fetched_at": None}  # its one fetch is still its own
