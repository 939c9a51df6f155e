"""A builder's two endpoints: `POST /internal/builds/{id}/spec` and `.../events`.

Machine endpoints, authenticated by the build's bootstrap token as a bearer token (never a
cookie, so the cross-site guard has nothing to refuse), and left out of the public schema.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from app.builds.service import BuildChannel
from app.errors import ErrorCode, UserError
from app.users.http import bearer_token

EVENTS_MAX_BYTES = 1024 * 1024
"""A batch's body; the builder sends at most half of this at once."""
_NO_STORE = {"Cache-Control": "no-store"}


class EventsOut(msgspec.Struct):
    events: int
    """How many events of the batch were appended."""


def _token(request: Request[Any, Any, Any]) -> str:
    token = bearer_token(request)
    if token is None:
        raise UserError(
            ErrorCode.BUILD_TOKEN_INVALID,
            "Send the build token as Authorization: Bearer <SCALEMESH_BUILD_TOKEN>.",
        )
    return token


class InternalBuildController(Controller):
    path = "/internal/builds/{deployment_id:str}"
    include_in_schema = False

    @post("/spec", status_code=200)
    async def spec(
        self,
        request: Request[Any, Any, Any],
        deployment_id: FromPath[str],
        builds: NamedDependency[BuildChannel],
    ) -> Response[dict[str, Any]]:
        """The build's spec, once per token."""
        spec = await builds.spec(deployment_id, _token(request))
        return Response(spec.to_json(), headers=_NO_STORE)

    @post("/events", status_code=200, request_max_body_size=EVENTS_MAX_BYTES)
    async def events(
        self,
        request: Request[Any, Any, Any],
        deployment_id: FromPath[str],
        builds: NamedDependency[BuildChannel],
    ) -> EventsOut:
        """Append a batch of log events, one JSON object per line."""
        token = _token(request)
        return EventsOut(events=await builds.append(deployment_id, token, await request.body()))
