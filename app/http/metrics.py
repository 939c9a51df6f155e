"""`GET /metrics` for Prometheus, behind its own bearer token, and the hook counting requests.

The token is `SCALEMESH_METRICS_TOKEN`: without one the route answers 404, as if it did not
exist, so a deployment that never set it exposes nothing; a wrong or missing bearer gets 401.
It is not a user's API token: a scraper should read counters, not act as anyone.
"""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.types import BeforeMessageSendHookHandler, Message, Scope
from prometheus_client import CONTENT_TYPE_LATEST

from app.http.errors import error_response
from app.metrics import ApiMetrics
from app.settings import Settings

METRICS_PATH = "/metrics"


@get(METRICS_PATH, include_in_schema=False, cache=False)
async def metrics(
    request: Request[Any, Any, Any],
    settings: NamedDependency[Settings],
    api_metrics: NamedDependency[ApiMetrics],
) -> Response[Any]:
    token = settings.metrics_token
    if token is None:
        return error_response(404, "not_found", "Not found.")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # Compared in constant time: the answer must not tell how much of a guess was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.reveal().encode()
    ):
        return error_response(
            401,
            "unauthorized",
            "Send the metrics token as a bearer token.",
            {"WWW-Authenticate": "Bearer"},
        )
    await api_metrics.refresh()
    return Response(api_metrics.render(), media_type=CONTENT_TYPE_LATEST)


def request_counter(api_metrics: ApiMetrics) -> BeforeMessageSendHookHandler:
    """A `before_send` hook counting each HTTP answer by method, route template and status.

    `before_send` sees every answer, those of requests no route took included (a 404 before
    routing), which a route middleware never would.
    """

    async def count(message: Message, scope: Scope) -> None:
        if message["type"] == "http.response.start" and scope["type"] == ScopeType.HTTP:
            api_metrics.request(scope["method"], scope.get("path_template"), message["status"])

    return count


ROUTES = [metrics]
