"""Property-based: no request generated from the OpenAPI schema causes a 5xx.

Schemathesis builds requests (valid ones and deliberately broken ones) from `/schema`; each is
sent through the real app, signed in, on every database engine. Every 4xx must be our
`{"error", "detail"}` shape.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from app.asgi import create_app
from app.settings import Settings
from tests.support import github_sign_in
from tests.support.api import PASSWORD, TEST_SECRET_KEY, Client, bearer, sign_up


def _openapi() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings.from_env(
            {"SCALEMESH_DATA_DIR": data_dir, "SCALEMESH_SECRET_KEY": TEST_SECRET_KEY}
        )
        schema: dict[str, Any] = create_app(settings).openapi_schema.to_schema()
    return schema


SCHEMA = schemathesis.openapi.from_dict(_openapi())
OPERATIONS = sorted(
    (method.upper(), path)
    for path, methods in SCHEMA.raw_schema["paths"].items()
    for method in methods
)

# Broken bodies are the interesting negative cases; a lone string path parameter has none.
CASES = [(method, path, GenerationMode.POSITIVE) for method, path in OPERATIONS] + [
    (method, path, GenerationMode.NEGATIVE)
    for method, path in OPERATIONS
    if "requestBody" in SCHEMA.raw_schema["paths"][path][method.lower()]
]


def test_the_schema_lists_every_route() -> None:
    assert ("POST", "/user/signup") in OPERATIONS
    assert ("PATCH", "/projects/{slug}") in OPERATIONS
    assert ("GET", "/health") in OPERATIONS


# Sign in with GitHub configured (GitHub being the fake), so its routes answer as they do in
# use rather than 503 `github_not_configured`.
github_users = github_sign_in.github_users
oauth_settings = github_sign_in.oauth_settings
oauth_client = github_sign_in.oauth_client


@pytest.fixture
def client(oauth_client: Client) -> Client:
    return oauth_client


@pytest.fixture
def token(client: Client) -> str:
    token = sign_up(client, "fuzz@example.com")
    client.post("/project", json={"name": "web", "repo": "o/r"}, headers=bearer(token))
    return token


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_generated_request_causes_a_server_error(
    client: Client, token: str, method: str, path: str, mode: GenerationMode
) -> None:
    operation = SCHEMA[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=20,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: Any) -> None:
        session = token
        if path == "/user/logout":
            # Keep the shared token alive for the other examples.
            login = {"email": "fuzz@example.com", "password": PASSWORD}
            session = client.post("/user/login", json=login).json()["token"]
        kwargs = case.as_transport_kwargs(base_url="http://testserver.local")
        client.cookies.clear()
        body = kwargs.get("json")
        response = client.request(
            kwargs["method"],
            kwargs["url"],
            headers={**kwargs.get("headers", {}), **bearer(session)},
            params=kwargs.get("params"),
            json=body,
            content=kwargs.get("data") if body is None else None,
        )

        assert response.status_code < 500, (method, path, kwargs, response.text)
        if response.status_code >= 400:
            assert set(response.json()) == {"error", "detail"}, response.text

    check()


def test_strategies_are_hypothesis_strategies() -> None:
    assert isinstance(SCHEMA["/health"]["GET"].as_strategy(), st.SearchStrategy)
