"""Protected previews over HTTP: `GET /auth/deployment` (the proxy's sign-in hand-off) and
`POST/DELETE /projects/{slug}/protection-bypass` (the shareable bypass secret)."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect

from app.errors import ErrorKind, UserError
from app.previews.service import PreviewService
from app.users.http import provide_user, signed_in
from app.users.records import CurrentUser
from app.users.service import UserService

_NOT_FOUND = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not found · Scale Mesh</title></head>
<body><main><h1>Not found</h1><p>{message}</p><p><a href="/">Your projects</a></p></main></body>
</html>
"""
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class BypassOut(msgspec.Struct):
    secret: str
    """Shown this once: send it as `x-scalemesh-bypass` or `?scalemesh-bypass=`."""


@get(
    "/auth/deployment",
    summary="Sign a browser in to a protected deployment",
    status_code=302,
    include_in_schema=False,  # a browser's hop between the proxy and back, answered in HTML
)
async def deployment_sign_in(
    request: Request[Any, Any, Any],
    users: NamedDependency[UserService],
    previews: NamedDependency[PreviewService],
    host: FromQuery[str] = "",
    next: FromQuery[str] = "/",
) -> Response[str] | Redirect:
    """Signed in and allowed to see the project: back to the deployment with a 60 s token."""
    user = await signed_in(request, users)
    if user is None:
        back = f"{request.url.path}?{request.url.query}"
        return Redirect(f"/login?next={quote(back, safe='')}", status_code=302, headers=_HEADERS)
    try:
        location = await previews.hand_off(user.id, host, next)
    except UserError as exc:
        if exc.kind is not ErrorKind.NOT_FOUND:
            raise
        body = _NOT_FOUND.format(message=html.escape(exc.detail))
        return Response(body, status_code=404, media_type="text/html", headers=_HEADERS)
    return Redirect(location, status_code=302, headers=_HEADERS)


class ProtectionBypassController(Controller):
    path = "/projects/{slug:str}/protection-bypass"
    dependencies = {"user": Provide(provide_user)}  # noqa: RUF012 - Litestar's own class attribute

    @post("/", status_code=201, summary="Create or replace the project's protection bypass secret")
    async def create(
        self,
        slug: FromPath[str],
        user: NamedDependency[CurrentUser],
        previews: NamedDependency[PreviewService],
    ) -> BypassOut:
        return BypassOut(secret=(await previews.create_bypass(user.id, slug)).secret)

    @delete("/", status_code=204, summary="Remove the project's protection bypass secret")
    async def remove(
        self,
        slug: FromPath[str],
        user: NamedDependency[CurrentUser],
        previews: NamedDependency[PreviewService],
    ) -> None:
        await previews.remove_bypass(user.id, slug)


ROUTES: list[type[Controller] | HTTPRouteHandler] = [
    deployment_sign_in,
    ProtectionBypassController,
]
