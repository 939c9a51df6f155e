"""Cross-site request forgery on the JSON API: refuse what a browser on another site could send.

Two rules, checked before a handler reads anything:

- a route that takes a JSON body (`data`) refuses any other body (415): an HTML form or a
  `text/plain` fetch from another site cannot send `application/json` without a CORS preflight,
  which this API never grants;
- an unsafe request (POST, PUT, PATCH, DELETE) authenticated by the session cookie is refused
  (403) when its `Origin` is not the API's own (`SCALEMESH_PUBLIC_URL`) or its `Sec-Fetch-Site`
  is anything but `same-origin` or `none`. Bearer tokens are never sent by a browser on its own,
  so those requests pass, as do requests with neither header (curl, the CLI).

The dashboard's forms (a router marked with `FORM_ROUTES`) carry their own signed CSRF token
(`app.web.pages`) and are not checked here; neither is GitHub's webhook, which is signed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.params import BodyKwarg

from app.errors import ErrorCode, UserError
from app.users.http import SESSION_COOKIE, bearer_token

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAFE_FETCH_SITES = frozenset({"same-origin", "none"})
FORM_ROUTES = {"csrf": "form token"}
"""A router's `opt` for HTML form routes: they check their own CSRF token instead."""
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """`scheme://host:port`, lower-cased with the port always written; None if not a URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or port is None:
        return None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host  # an IPv6 address, bracketed as in a URL
    return f"{parts.scheme.lower()}://{host}:{port}"


def takes_json(request: Request[Any, Any, Any]) -> bool:
    """Whether the route reads a JSON body (`data`, JSON being Litestar's default)."""
    data = request.route_handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return False
    kwarg = data.kwarg_definition
    media_type = kwarg.media_type if isinstance(kwarg, BodyKwarg) else RequestEncodingType.JSON
    return media_type == RequestEncodingType.JSON


def is_json(content_type: str, options: dict[str, str]) -> bool:
    charset = options.get("charset", "utf-8").strip().lower()
    return content_type.strip().lower() == "application/json" and charset in ("utf-8", "utf8")


def by_cookie(request: Request[Any, Any, Any]) -> bool:
    """A request a browser could have sent on its own: the session cookie and no bearer token."""
    return bearer_token(request) is None and bool(request.cookies.get(SESSION_COOKIE))


class CrossSiteGuard:
    """A `before_request` hook enforcing both rules for the API whose public URL is given."""

    def __init__(self, public_url: str) -> None:
        self.origin = origin_of(public_url)

    async def __call__(self, request: Request[Any, Any, Any]) -> None:
        if request.method not in UNSAFE_METHODS or request.route_handler.opt.get("csrf"):
            return
        if takes_json(request) and await request.body():
            content_type, options = request.content_type
            if not is_json(content_type, options):
                raise UserError(
                    ErrorCode.NOT_JSON,
                    "Send the body as JSON, with Content-Type: application/json.",
                )
        if by_cookie(request) and not self.same_origin(request):
            raise UserError(
                ErrorCode.CROSS_SITE,
                "This request came from another site; call the API with a bearer token "
                "(scalemesh login, or an API token) instead of the browser's session.",
            )

    def same_origin(self, request: Request[Any, Any, Any]) -> bool:
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site.strip().lower() not in SAFE_FETCH_SITES:
            return False
        origin = request.headers.get("origin")
        return origin is None or (self.origin is not None and origin_of(origin) == self.origin)
