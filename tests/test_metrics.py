"""The API's `/metrics`: what Prometheus reads after real requests, builds and deliveries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from app.asgi import create_app
from app.settings import Settings
from app.tables import WebhookDelivery
from tests.support.api import Client, bearer, sign_up
from tests.support.deploying import deploy
from tests.support.deployments import FakeResolver, FakeRunner, fail, skip, succeed, tick
from tests.support.metrics import METRICS_TOKEN, value

SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def metered(
    make_settings: Callable[..., Settings], database_url: str
) -> Callable[..., Iterator[Client]]:
    def open_app(runner: FakeRunner, **overrides: str) -> Iterator[Client]:
        settings = make_settings(
            SCALEMESH_DATABASE_URL=database_url,
            SCALEMESH_METRICS_TOKEN=METRICS_TOKEN,
            **overrides,
        )
        app = create_app(settings, runner=runner, ref_resolver=FakeResolver(), reconcile=False)
        with Client(app) as client:
            yield client

    return open_app


@pytest.fixture
def client(metered: Callable[..., Iterator[Client]], runner: FakeRunner) -> Iterator[Client]:
    yield from metered(runner, SCALEMESH_MAX_CONCURRENT_BUILDS="1")


@pytest.fixture
def token(client: Client) -> str:
    token = sign_up(client)
    response = client.post(
        "/project", json={"name": "web", "repo": "octo/web"}, headers=bearer(token)
    )
    assert response.status_code == 201
    return token


def scrape(client: Client) -> str:
    response = client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_requests_are_counted_by_route_template_and_status(client: Client, token: str) -> None:
    for slug in ("web", "nope", "other"):
        client.get(f"/projects/{slug}", headers=bearer(token))
    client.get("/no/such/page")

    text = scrape(client)

    def requests(method: str, route: str, status: str) -> float | None:
        labels = {"method": method, "route": route, "status": status}
        return value(text, "scalemesh_http_requests_total", **labels)

    assert requests("POST", "/project", "201") == 1
    assert requests("GET", "/projects/{slug}", "200") == 1
    assert requests("GET", "/projects/{slug}", "404") == 2
    assert requests("GET", "unmatched", "404") == 1
    # The raw paths never become labels: their number is up to whoever sends requests.
    assert "/projects/nope" not in text
    assert "/no/such/page" not in text


def test_builds_are_timed_by_outcome_and_the_queue_is_read_at_scrape(
    client: Client, token: str, runner: FakeRunner
) -> None:
    # Three refs: a newer deployment of one branch would supersede the older one.
    first, second, third = (
        deploy(client, token, ref=ref)["id"] for ref in ("main", "feature/login", "v1.0")
    )

    text = scrape(client)
    assert value(text, "scalemesh_deployments_queued") == 3
    assert value(text, "scalemesh_deployments_building") == 0

    tick(client)  # one build slot: the oldest starts, the others wait
    text = scrape(client)
    assert value(text, "scalemesh_deployments_queued") == 2
    assert value(text, "scalemesh_deployments_building") == 1
    assert value(text, "scalemesh_build_duration_seconds_count", outcome="ready") is None

    building = next(
        d
        for d in (first, second, third)
        if d in {b.spec.deployment_id for b in runner.builds.values()}
    )
    succeed(client, runner, building)
    tick(client)  # finishes it and starts the next
    text = scrape(client)
    assert value(text, "scalemesh_build_duration_seconds_count", outcome="ready") == 1
    assert value(text, "scalemesh_builds_finished_total", outcome="ready") == 1
    assert value(text, "scalemesh_build_duration_seconds_bucket", outcome="ready", le="+Inf") == 1
    assert value(text, "scalemesh_deployments_building") == 1

    started = [b.spec.deployment_id for b in runner.builds.values()]
    fail(client, runner, started[-1], "npm ERR! missing script: build")
    tick(client)
    text = scrape(client)
    assert value(text, "scalemesh_build_duration_seconds_count", outcome="failed") == 1
    assert value(text, "scalemesh_build_duration_seconds_count", outcome="ready") == 1
    assert value(text, "scalemesh_deployments_queued") == 0
    assert value(text, "scalemesh_deployments_building") == 1


def test_a_deployment_cancelled_before_it_started_counts_without_a_duration(
    client: Client, token: str
) -> None:
    queued = deploy(client, token)["id"]
    response = client.post(f"/deployments/{queued}/cancel", headers=bearer(token))
    assert response.status_code == 200, response.text
    tick(client)

    text = scrape(client)

    assert value(text, "scalemesh_builds_finished_total", outcome="cancelled") == 1
    assert value(text, "scalemesh_build_duration_seconds_count", outcome="cancelled") is None


def test_a_skipped_build_counts_as_skipped(client: Client, token: str, runner: FakeRunner) -> None:
    skipped = deploy(client, token)["id"]
    tick(client)
    skip(client, runner, skipped, b'{"reason": "previews are off"}')
    tick(client)

    text = scrape(client)

    assert value(text, "scalemesh_builds_finished_total", outcome="skipped") == 1
    assert value(text, "scalemesh_build_duration_seconds_count", outcome="skipped") == 1
    assert value(text, "scalemesh_builds_finished_total", outcome="ready") is None


def test_the_webhook_backlog_is_its_oldest_unprocessed_delivery(client: Client) -> None:
    text = scrape(client)
    assert value(text, "scalemesh_webhook_deliveries_unprocessed") == 0
    assert value(text, "scalemesh_webhook_lag_seconds") == 0

    now = datetime.now(UTC)

    async def store() -> None:
        for delivery_id, age, processed, dead in (
            ("old", 120, False, False),
            ("new", 5, False, False),
            ("done", 600, True, False),
            ("dead", 900, False, True),  # a dead letter waits for an admin, not the worker
        ):
            await WebhookDelivery.insert(
                WebhookDelivery(
                    delivery_id=delivery_id,
                    event="push",
                    received_at=now - timedelta(seconds=age),
                    processed_at=now if processed else None,
                    dead_at=now if dead else None,
                )
            )

    client.run(store)
    text = scrape(client)

    assert value(text, "scalemesh_webhook_deliveries_unprocessed") == 2
    lag = value(text, "scalemesh_webhook_lag_seconds")
    assert lag is not None
    assert 120 <= lag < 180


def test_without_a_token_there_is_no_metrics_route(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    settings = make_settings(SCALEMESH_DATABASE_URL=database_url)
    with Client(create_app(settings, reconcile=False)) as client:
        response = client.get("/metrics", headers=SCRAPE)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "scalemesh_" not in response.text


def test_made_up_methods_are_counted_as_one_label(client: Client) -> None:
    """Anyone may send any method token: each must not become a series of its own, or
    anonymous requests would grow the registry (and every scrape) without end."""
    for method in ("BREW", "WHEN1", "WHEN2"):
        assert client.request(method, "/health").status_code == 405

    text = scrape(client)

    other = {"method": "other", "route": "unmatched", "status": "405"}
    assert value(text, "scalemesh_http_requests_total", **other) == 3
    assert "BREW" not in text
    assert "WHEN1" not in text


@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {METRICS_TOKEN}x", f"Basic {METRICS_TOKEN}", "Bearer", METRICS_TOKEN],
)
def test_a_wrong_or_missing_bearer_is_refused(client: Client, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = client.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "scalemesh_" not in response.text


def test_each_app_counts_only_its_own_requests(
    metered: Callable[..., Iterator[Client]],
) -> None:
    health = {"method": "GET", "route": "/health", "status": "200"}
    scrapes = []
    # One after the other: the apps of one process share the bound database engine.
    for requests in (2, 1):
        for client in metered(FakeRunner()):
            for _ in range(requests):
                client.get("/health")
            scrapes.append(scrape(client))

    assert [value(text, "scalemesh_http_requests_total", **health) for text in scrapes] == [2, 1]
