"""The gate in front of protected deployments: the proxy's cookie, the bypass secret, the hand-off.

A protected hostname (`Target.protected`) is served only to a request that carries this proxy's
cookie for that very hostname (for a custom domain: and its project; `Target.binding`; a signed
`app.preview_tokens` token: one HMAC to check, the first
time this process sees it; its expiry after that), or the
project's bypass secret (header, or query parameter, which also sets the cookie). Anyone else is
sent to the API's `/auth/deployment`, which checks who they are and sends them back to
`/_scalemesh/auth` on this host with a 60 s token; the gate then sets the cookie (HttpOnly,
SameSite=Lax, Secure over https, no Domain: that host only) and sends them on to `next`.
"""

from __future__ import annotations

import dataclasses
import html
import time
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlencode

from app import preview_tokens as tokens
from app.hostnames import full_hostname
from app.local_paths import local_path
from app.settings import Settings
from proxy.serve import ProxyResponse
from proxy.target import Target

_COOKIE_PREFIX = tokens.COOKIE_NAME.encode() + b"="
VERIFIED_KEPT = 4096
"""Cookies remembered as verified, per proxy process: a browser sends the same one for hours."""
_NO_STORE = [("cache-control", "no-store"), ("x-content-type-options", "nosniff")]


class Gate:
    """Decides what a request to a protected hostname gets; one per proxy process."""

    def __init__(self, settings: Settings) -> None:
        self.key = tokens.preview_keys(
            (key.id, key.secret.reveal()) for key in settings.require_preview_keys().keys
        )
        self.root_domain = settings.root_domain
        self.auth_url = f"{settings.public_url}/auth/deployment"
        self.https = settings.deployment_url_template.startswith("https://")
        self._verified: dict[tuple[str, bytes], float] = {}
        """(binding, cookie) → when it expires, for cookies whose HMAC was checked here."""

    def cookie_ok(self, headers: Iterable[tuple[bytes, bytes]], target: Target) -> bool:
        """The request carries a valid cookie for this hostname (the replay path's one check)."""
        for name, value in headers:
            if name == b"cookie" and _COOKIE_PREFIX in value:
                for part in value.split(b";"):
                    part = part.strip()
                    if part.startswith(_COOKIE_PREFIX) and self._valid(target.binding, part):
                        return True
        return False

    def _valid(self, binding: str, part: bytes) -> bool:
        now = time.time()
        known = self._verified.get((binding, part))
        if known is not None:
            return known > now
        token = part[len(_COOKIE_PREFIX) :].decode("latin-1")
        if not tokens.verify(self.key, tokens.COOKIE, binding, token, now):
            return False
        if len(self._verified) >= VERIFIED_KEPT:
            self._verified.clear()
        # The token's own expiry (checked by `verify`): a number before the dot.
        self._verified[(binding, part)] = float(token.partition(".")[0])
        return True

    def check(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        scheme: str,
        raw_path: bytes,
        query: bytes,
        target: Target,
    ) -> ProxyResponse | None:
        """None when the request may be served; else the answer to send instead."""
        headers = list(headers)
        if self.cookie_ok(headers, target):
            return None
        presented = next((v for k, v in headers if k == tokens.BYPASS_HEADER.encode()), None)
        if presented is not None and tokens.bypass_matches(
            self.key, target.bypass_hash, presented.decode("latin-1")
        ):
            return None
        path = raw_path.decode("latin-1")
        kept, secret = _without_bypass(query.decode("latin-1"))
        if secret is not None and tokens.bypass_matches(self.key, target.bypass_hash, secret):
            location = path + (f"?{kept}" if kept else "")
            return redirect(location, self._cookie(target, scheme))
        back = path + (f"?{query.decode('latin-1')}" if query else "")
        hostname = full_hostname(target.name, self.root_domain)
        return redirect(f"{self.auth_url}?{urlencode({'host': hostname, 'next': back})}")

    def hand_off(self, scheme: str, query: bytes, target: Target) -> ProxyResponse:
        """`/_scalemesh/auth?token=…&next=…`: a valid hand-off token sets the cookie."""
        params = dict(parse_qsl(query.decode("latin-1")))
        token = params.get("token", "")
        if not tokens.verify(self.key, tokens.HANDOFF, target.binding, token):
            return _refused()
        return redirect(local_path(params.get("next", "/")), self._cookie(target, scheme))

    def _cookie(self, target: Target, scheme: str) -> str:
        token = tokens.sign(self.key, tokens.COOKIE, target.binding, tokens.COOKIE_SECONDS)
        secure = "; Secure" if self.https or scheme == "https" else ""
        return (
            f"{tokens.COOKIE_NAME}={token}; Path=/; Max-Age={tokens.COOKIE_SECONDS}; "
            f"HttpOnly; SameSite=Lax{secure}"
        )


def private(response: ProxyResponse) -> ProxyResponse:
    """`response` for one viewer only: no shared cache (a CDN) may keep a protected answer."""
    headers = [
        (name, _private_cache_control(value) if name == "cache-control" else value)
        for name, value in response.headers
    ]
    if not any(name == "cache-control" for name, _ in headers):
        headers.append(("cache-control", "private"))
    return dataclasses.replace(response, headers=headers)


def _private_cache_control(value: str) -> str:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    kept = [part for part in parts if part.lower() not in ("public", "private")]
    return ", ".join(["private", *kept])


def _without_bypass(query: str) -> tuple[str, str | None]:
    """The query without `scalemesh-bypass` (its other parameters untouched), and its value."""
    if tokens.BYPASS_PARAM not in query:
        return query, None
    kept, secret = [], None
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if unquote(name.replace("+", " ")) == tokens.BYPASS_PARAM:
            secret = unquote(value.replace("+", " "))
        elif part:
            kept.append(part)
    return "&".join(kept), secret


def redirect(location: str, cookie: str | None = None) -> ProxyResponse:
    headers = [("location", location), ("content-length", "0"), *_NO_STORE]
    if cookie is not None:
        headers.append(("set-cookie", cookie))
    return ProxyResponse(status=302, headers=headers)


def _refused() -> ProxyResponse:
    body = (
        "<!doctype html><title>Link expired · Scale Mesh</title>"
        f"<h1>{html.escape('This sign-in link has expired or is not valid')}</h1>"
        "<p>Open the deployment's address again to sign in.</p>"
    ).encode()
    headers = [
        ("content-type", "text/html; charset=utf-8"),
        ("content-length", str(len(body))),
        *_NO_STORE,
    ]
    return ProxyResponse(status=403, headers=headers, body=body)
