"""The proxy's server factory believes X-Forwarded-Proto and -For only from trusted hops.

Behind Caddy or an Ingress the visitor's scheme arrives in a header: a custom domain's 308 must
keep `https`. A visitor talking to the proxy directly must not choose the scheme by sending it.
"""

from __future__ import annotations

from typing import Any

import pytest

import proxy.asgi
from proxy.asgi import FORWARDED_ALLOW_IPS, create_proxy_from_env

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The scopes the proxy app is called with, behind the factory's wrapping."""
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(dict(scope))

    monkeypatch.setattr(proxy.asgi, "create_proxy", lambda settings: app)
    return scopes


def scope(client: str) -> dict[str, Any]:
    return {
        "type": "http",
        "scheme": "http",
        "client": (client, 50000),
        "headers": [
            (b"host", b"web.dev"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-for", b"203.0.113.7"),
        ],
    }


async def call(app: Any, client: str) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError("the recording app sends nothing")

    await app(scope(client), receive, send)


async def test_only_a_trusted_hop_sets_the_scheme_and_client(
    seen: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FORWARDED_ALLOW_IPS, raising=False)
    app = create_proxy_from_env()

    await call(app, "127.0.0.1")
    await call(app, "198.51.100.9")

    trusted, direct = seen
    assert (trusted["scheme"], trusted["client"][0]) == ("https", "203.0.113.7")
    assert (direct["scheme"], direct["client"][0]) == ("http", "198.51.100.9")


async def test_the_trusted_hops_come_from_forwarded_allow_ips(
    seen: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FORWARDED_ALLOW_IPS, "10.0.0.0/8")
    app = create_proxy_from_env()

    await call(app, "10.1.2.3")
    await call(app, "127.0.0.1")

    ingress, local = seen
    assert ingress["scheme"] == "https"
    assert local["scheme"] == "http"
