"""The proxy's server factory believes X-Forwarded-Proto and -For only from trusted hops.

Behind Caddy or an Ingress the visitor's scheme arrives in a header: a custom domain's 308 must
keep `https`. A visitor talking to the proxy directly must not choose the scheme by sending it.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.asgi import FORWARDED_ALLOW_IPS, create_proxy_from_env

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recording:
    """Stands in for the app's `Proxy`: replays nothing (or `answer`), records what `handle`
    is given."""

    def __init__(self, answer: tuple[dict[str, Any], dict[str, Any]] | None = None) -> None:
        self.answer = answer
        self.scopes: list[dict[str, Any]] = []

    def replay(self, memo_key: Any, scope: dict[str, Any]) -> Any:
        return self.answer

    async def handle(self, scope: dict[str, Any], send: Any, memo_key: Any) -> None:
        self.scopes.append(dict(scope))


@pytest.fixture
def recording() -> Recording:
    return Recording()


def app_with(proxy: Recording) -> Any:
    app = create_proxy_from_env()
    app.proxy = proxy
    return app


def scope(client: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/",
        "scheme": "http",
        "client": (client, 50000),
        "headers": [
            (b"host", b"web.dev"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-for", b"203.0.113.7"),
        ],
    }


async def call(app: Any, client: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope(client), receive, send)
    return sent


async def test_only_a_trusted_hop_sets_the_scheme_and_client(
    recording: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(FORWARDED_ALLOW_IPS, raising=False)
    app = app_with(recording)

    await call(app, "127.0.0.1")
    await call(app, "198.51.100.9")

    trusted, direct = recording.scopes
    assert (trusted["scheme"], trusted["client"][0]) == ("https", "203.0.113.7")
    assert (direct["scheme"], direct["client"][0]) == ("http", "198.51.100.9")


async def test_the_trusted_hops_come_from_forwarded_allow_ips(
    recording: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FORWARDED_ALLOW_IPS, "10.0.0.0/8")
    app = app_with(recording)

    await call(app, "10.1.2.3")
    await call(app, "127.0.0.1")

    ingress, local = recording.scopes
    assert ingress["scheme"] == "https"
    assert local["scheme"] == "http"


async def test_a_replayed_answer_is_sent_without_reading_the_forwarded_headers() -> None:
    start = {"type": "http.response.start", "status": 200, "headers": []}
    body = {"type": "http.response.body", "body": b"remembered"}
    remembered = Recording((start, body))

    sent = await call(app_with(remembered), "127.0.0.1")

    assert sent == [start, body]
    assert remembered.scopes == []  # `handle`, and the forwarded headers, never reached
