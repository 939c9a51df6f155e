"""Custom domains through the proxy's ASGI app: served when verified, nothing while pending,
a redirecting domain's 308, wildcards, and the on-demand TLS ask (`/_scalemesh/tls-allowed`).

`tests.support.proxy.seed` gives project `web` its production alias `web` and the verified
domain `www.web.dev`; the tests add the other domains they need.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

import pytest

from app.deployments.publish import point_alias
from app.hostnames import branch_label
from app.settings import Settings
from app.tables import Domain
from proxy.asgi import running
from proxy.custom_domains import REDIRECT_CACHE_CONTROL, TLS_ALLOWED_PATH
from tests.support.proxy import INDEX, OTHER, Served, seed

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    project_id = await seed(settings)
    stamp = datetime.now(UTC)
    for name, verified, redirect_to, git_branch in (
        ("pending.web.dev", None, None, None),
        ("web.dev", stamp, "www.web.dev", None),
        ("*.apps.web.dev", stamp, None, None),
        ("staging.web.dev", stamp, None, "staging"),
    ):
        await Domain.insert(
            Domain(
                name=name,
                project=project_id,
                token="t" * 32,
                verified_at=verified,
                redirect_to=redirect_to,
                git_branch=git_branch,
            )
        )
    await point_alias(branch_label("web", "staging"), project_id, OTHER)
    async with running(settings) as proxy:
        served = Served(proxy)
        yield served
        await served.http.aclose()


async def test_a_verified_domain_serves_the_production_deployment(served: Served) -> None:
    label = await served.get("/")
    domain = await served.get("/", host="www.web.dev")
    replayed = await served.get("/", host="WWW.web.dev:443")

    assert (domain.status_code, domain.content) == (200, INDEX)
    assert domain.headers["etag"] == label.headers["etag"]
    assert (replayed.status_code, replayed.content) == (200, INDEX)


async def test_a_served_domain_is_replayed_with_no_query(served: Served) -> None:
    assert (await served.get("/", host="www.web.dev")).status_code == 200
    stats = served.proxy.lookup.stats
    for _ in range(20):
        assert (await served.get("/", host="www.web.dev")).content == INDEX

    after = served.proxy.lookup.stats
    assert (after.queries, after.misses) == (stats.queries, stats.misses)
    assert after.hits >= stats.hits + 20, "each request peeked at the cache"


async def test_a_pending_domain_is_answered_as_an_unknown_host(served: Served) -> None:
    pending = await served.get("/", host="pending.web.dev")
    unknown = await served.get("/", host="unknown.web.dev")

    for answer, host in ((pending, "pending.web.dev"), (unknown, "unknown.web.dev")):
        assert answer.status_code == 404
        assert "No deployment here" in answer.text
        assert host in answer.text


async def test_a_wildcard_and_a_branch_domain(served: Served) -> None:
    wildcard = await served.get("/", host="shop.apps.web.dev")
    staging = await served.get("/", host="staging.web.dev")
    too_deep = await served.get("/", host="a.shop.apps.web.dev")

    assert (wildcard.status_code, wildcard.content) == (200, INDEX)
    assert (staging.status_code, staging.content) == (200, b"<h1>Other</h1>")
    assert too_deep.status_code == 404


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE"])
async def test_a_redirecting_domain_keeps_the_path_and_query(served: Served, method: str) -> None:
    path = "/a%2Fb/caf%C3%A9/x/?q=1&r=%20two&q=2&q"
    response = await served.http.request(method, f"https://web.dev{path}")

    assert response.status_code == 308
    assert response.headers["location"] == f"https://www.web.dev{path}"
    assert response.headers["cache-control"] == REDIRECT_CACHE_CONTROL
    assert response.content == b""


async def raw_get(
    served: Served, raw_path: bytes, query: bytes, host: bytes
) -> tuple[int, dict[bytes, bytes]]:
    """A GET as a server hands it over, bytes a client library would escape left raw."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": raw_path.decode("utf-8"),
        "raw_path": raw_path,
        "query_string": query,
        "headers": [(b"host", host)],
    }
    await served.app(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"])


async def test_a_redirect_keeps_the_scheme_and_sends_raw_bytes_escaped(served: Served) -> None:
    plain = await served.http.get("http://web.dev/")
    status, headers = await raw_get(served, b"/a/../caf\xc3\xa9", b"a=\xc3\xa9", host=b"web.dev")

    assert plain.headers["location"] == "http://www.web.dev/"
    assert status == 308
    assert headers[b"location"] == b"http://www.web.dev/a/../caf%C3%A9?a=%C3%A9"


async def test_a_redirect_is_never_remembered_for_another_scheme(served: Served) -> None:
    first = await served.http.get("https://web.dev/x")
    second = await served.http.get("http://web.dev/x")

    assert first.headers["location"] == "https://www.web.dev/x"
    assert second.headers["location"] == "http://www.web.dev/x"


# --- the on-demand TLS ask ----------------------------------------------------------------


async def ask(served: Served, query: str) -> int:
    response = await served.http.get(f"http://127.0.0.1:8080{TLS_ALLOWED_PATH}?{query}")
    assert response.headers["cache-control"] == "no-store"
    return response.status_code


async def test_tls_is_allowed_for_verified_domains_and_hostnames_with_an_alias(
    served: Served,
) -> None:
    for domain in (
        "www.web.dev",
        "WWW.WEB.DEV.",
        "web.dev",  # a redirect needs a certificate too
        "staging.web.dev",
        "any.apps.web.dev",
        "web.localhost",
        f"{branch_label('web', 'staging')}.localhost",
    ):
        assert await ask(served, f"domain={domain}") == 200, domain


async def test_tls_is_refused_for_everything_else_and_logged(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="proxy.custom_domains")
    refused = [
        "domain=pending.web.dev",
        "domain=unknown.example.org",
        "domain=nothing.localhost",  # no alias
        "domain=a.b.web.localhost",
        "domain=localhost",
        "domain=127.0.0.1",
        "domain=www.web.dev:443",
        "domain=bad%20host",
        "domain=" + "a" * 300 + ".com",
        "domain=%FF.com",
        "domain=",
        "other=www.web.dev",
        "",
        "a=1&b=2&c=3&d=4&e=5&domain=www.web.dev",  # more fields than an ask has
        "domain=www.web.dev&pad=" + "x" * 600,  # longer than an ask
    ]
    for query in refused:
        assert await ask(served, query) == 404, query

    records = [record for record in caplog.records if record.getMessage() == "tls refused"]
    assert len(records) == len(refused)
    assert records[0].domain == "pending.web.dev"
    assert all(len(record.domain) <= 253 for record in records)


async def test_tls_asks_cost_what_serving_costs(served: Served) -> None:
    assert await ask(served, "domain=www.web.dev") == 200
    queries = served.proxy.lookup.stats.queries
    for _ in range(50):
        assert await ask(served, "domain=www.web.dev") == 200
        assert await ask(served, "domain=unknown.example.org") == 404
    assert served.proxy.lookup.stats.queries == queries + 1, "one query for the new name"


async def test_only_get_and_head_ask(served: Served) -> None:
    head = await served.http.head(f"http://127.0.0.1:8080{TLS_ALLOWED_PATH}?domain=www.web.dev")
    post = await served.http.post(f"http://127.0.0.1:8080{TLS_ALLOWED_PATH}?domain=www.web.dev")

    assert head.status_code == 200
    assert post.status_code == 404  # no site on an address: the usual page
    assert "No deployment here" in post.text


async def test_the_sign_in_path_of_a_redirecting_domain_redirects_too(served: Served) -> None:
    response = await served.http.get("https://web.dev/_scalemesh/auth?token=x&next=/")

    assert response.status_code == 308
    assert response.headers["location"] == "https://www.web.dev/_scalemesh/auth?token=x&next=/"
