"""The API's Prometheus metrics: requests, builds, the build queue and the webhook backlog.

Each app owns one `ApiMetrics` with its own `CollectorRegistry` (never prometheus-client's
global one): a process, or a test, may hold many apps, and each counts only its own traffic.
Counters move as things happen (`request`, `build_finished`); the queue and backlog gauges are
read from the database when `/metrics` is scraped (`refresh`), so every replica reports the
same shared queue and nothing has to keep them in step.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from app.deployments.lifecycle import DeploymentState
from app.tables import Deployment, WebhookDelivery

BUILD_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
"""Seconds: static builds take from a few seconds to the 15 minute default timeout."""
UNMATCHED = "unmatched"
"""The route label of a request no route took (a 404 or 405 before any handler ran)."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""The methods counted by name; any other (a client may send any token) is `OTHER_METHOD`."""
OTHER_METHOD = "other"


class ApiMetrics:
    """One API app's metrics and the registry `/metrics` renders."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "scalemesh_http_requests",
            "HTTP requests answered, by method, route template and status",
            ("method", "route", "status"),
            registry=registry,
        )
        self.build_duration = Histogram(
            "scalemesh_build_duration_seconds",
            "From a build's start to its deployment's final state, by outcome",
            ("outcome",),
            buckets=BUILD_BUCKETS,
            registry=registry,
        )
        self.builds_finished = Counter(
            "scalemesh_builds_finished",
            "Deployments that reached a final state, by outcome (started or not)",
            ("outcome",),
            registry=registry,
        )
        self.queued = Gauge(
            "scalemesh_deployments_queued",
            "Deployments waiting for a build slot (all replicas)",
            registry=registry,
        )
        self.building = Gauge(
            "scalemesh_deployments_building",
            "Deployments being built now (all replicas)",
            registry=registry,
        )
        self.unprocessed = Gauge(
            "scalemesh_webhook_deliveries_unprocessed",
            "Webhook deliveries stored but not yet handled (dead letters excluded)",
            registry=registry,
        )
        self.webhook_lag = Gauge(
            "scalemesh_webhook_lag_seconds",
            "Age of the oldest unprocessed webhook delivery; 0 when there is none",
            registry=registry,
        )

    def request(self, method: str, route: str | None, status: int) -> None:
        """Count one answered request; `route` is the template (`/projects/{slug}`), never the
        path, and an unknown method is `other`, so the labels stay few whatever clients send."""
        method = method if method in METHODS else OTHER_METHOD
        self.requests.labels(method, route or UNMATCHED, str(status)).inc()

    def build_finished(self, outcome: DeploymentState, started_at: datetime | None) -> None:
        """A deployment reached its final state; a build that never started has no duration."""
        self.builds_finished.labels(outcome.value).inc()
        if started_at is not None:
            seconds = max(0.0, (datetime.now(UTC) - started_at).total_seconds())
            self.build_duration.labels(outcome.value).observe(seconds)

    async def refresh(self) -> None:
        """Read the shared queue and the webhook backlog into the gauges."""
        self.queued.set(await Deployment.count().where(Deployment.state == DeploymentState.QUEUED))
        self.building.set(
            await Deployment.count().where(Deployment.state == DeploymentState.BUILDING)
        )
        # A dead letter waits for an admin, not for the worker: it is no backlog.
        waiting = WebhookDelivery.processed_at.is_null() & WebhookDelivery.dead_at.is_null()
        self.unprocessed.set(await WebhookDelivery.count().where(waiting))
        oldest = (
            await WebhookDelivery.select(WebhookDelivery.received_at)
            .where(waiting)
            .order_by(WebhookDelivery.received_at)
            .first()
        )
        lag = 0.0
        if oldest is not None:
            lag = max(0.0, (datetime.now(UTC) - oldest["received_at"]).total_seconds())
        self.webhook_lag.set(lag)

    def render(self) -> bytes:
        """The text exposition format of everything registered."""
        return generate_latest(self.registry)
