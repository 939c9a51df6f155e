"""The proxy's `/metrics`: scraped on an internal host after real requests, never on a site's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from app.settings_parts import SettingsError
from proxy.asgi import running
from proxy.metrics import Sent, counting, is_metrics_host
from tests.support.metrics import value
from tests.support.proxy import INDEX, SCRIPT, Served, seed

pytestmark = pytest.mark.anyio

INTERNAL = "scalemesh-proxy.scalemesh.svc"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def served(
    make_settings: Callable[..., Settings], settings: Settings
) -> AsyncIterator[Served]:
    # `www.web.dev` is the seeded site's custom domain: naming it must not take it over.
    chosen = make_settings(
        SCALEMESH_DATABASE_URL=settings.database.url.reveal(),
        SCALEMESH_STORAGE_URL=settings.storage.url,
        SCALEMESH_PROXY_METRICS_HOSTS=f"{INTERNAL}, www.web.dev",
    )
    await seed(chosen)
    async with running(chosen) as proxy:
        served = Served(proxy)
        yield served
        await served.http.aclose()


async def scrape(served: Served, host: str = "10.1.2.3:8080") -> str:
    response = await served.get("/metrics", host=host)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    return str(response.text)


async def test_cache_hits_misses_and_bytes_sent_after_real_requests(served: Served) -> None:
    text = await scrape(served)
    assert value(text, "scalemesh_proxy_bytes_sent_total") == 0
    assert value(text, "scalemesh_proxy_cache_hits_total") == 0
    assert value(text, "scalemesh_proxy_responses_total", status="200") is None
    assert value(text, "scalemesh_proxy_cache_misses_total") == 0

    first = await served.get("/")
    assert first.content == INDEX
    text = await scrape(served)
    misses = value(text, "scalemesh_proxy_cache_misses_total")
    hits = value(text, "scalemesh_proxy_cache_hits_total")
    assert misses is not None
    assert misses >= 1  # index.html came from storage
    assert value(text, "scalemesh_proxy_bytes_sent_total") == len(INDEX)

    again = await served.get("/")  # a remembered answer, its body from memory
    script = await served.get("/assets/app-1a2b3c4d.js")
    missing = await served.get("/no-such-page")
    head = await served.http.head("/", headers={"host": "web.localhost:8080"})
    assert (again.content, script.content, head.content) == (INDEX, SCRIPT, b"")
    text = await scrape(served)

    # As sent: the script went gzipped (httpx asks for it, and unpacks it).
    sent = len(INDEX) * 2 + script.num_bytes_downloaded + missing.num_bytes_downloaded
    assert script.num_bytes_downloaded < len(SCRIPT)
    assert value(text, "scalemesh_proxy_bytes_sent_total") == sent
    assert value(text, "scalemesh_proxy_cache_hits_total") == (hits or 0) + 2  # `/` twice
    assert value(text, "scalemesh_proxy_cache_misses_total") == misses + 1  # the script
    # Every answer to a site, replayed or not; the scrapes themselves are not among them.
    answers = [first, again, script, missing, head]
    assert value(text, "scalemesh_proxy_responses_total", status="200") == len(answers)
    unknown = await served.get("/", host="nothing-here.localhost")
    text = await scrape(served)
    assert unknown.status_code == 404
    assert value(text, "scalemesh_proxy_responses_total", status="404") == 1
    cached = value(text, "scalemesh_proxy_cache_bytes")
    assert cached is not None
    assert cached >= len(INDEX) + script.num_bytes_downloaded


@pytest.mark.parametrize("host", ["10.1.2.3", "10.1.2.3:8080", "[::1]:8080", INTERNAL])
async def test_metrics_answer_on_an_address_or_an_internal_name(served: Served, host: str) -> None:
    text = await scrape(served, host)

    assert value(text, "scalemesh_proxy_bytes_sent_total") == 0


async def test_a_head_scrape_has_the_headers_only(served: Served) -> None:
    response = await served.http.head("/metrics", headers={"host": "10.1.2.3"})

    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) > 0


@pytest.mark.parametrize("host", ["web.localhost:8080", "www.web.dev"])
async def test_a_site_is_never_shadowed_by_metrics(served: Served, host: str) -> None:
    """A tenant hostname, even one the settings named, answers `/metrics` with its own site."""
    response = await served.get("/metrics", host=host)

    assert response.content == INDEX  # the site's single-page fallback
    assert "scalemesh_proxy" not in response.text


async def test_an_unknown_hostname_gets_no_metrics(served: Served) -> None:
    response = await served.get("/metrics", host="stranger.example.com")

    assert response.status_code == 404
    assert "Nothing is deployed" in response.text
    assert "scalemesh_proxy" not in response.text


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("192.168.0.7", True),
        ("192.168.0.7:80", True),
        ("[2001:db8::1]:443", True),
        ("[2001:db8::1", False),
        ("INTERNAL.svc.", True),
        ("internal.svc:9100", True),
        ("web.localhost", False),
        ("localhost", False),
        ("", False),
    ],
)
def test_which_hosts_are_metrics_hosts(host: str, expected: bool) -> None:
    assert is_metrics_host(host, ("internal.svc",)) is expected


@pytest.mark.parametrize(
    ("variable", "raw", "error"),
    [
        ("SCALEMESH_PROXY_METRICS_HOSTS", "shop.localhost", "under SCALEMESH_ROOT_DOMAIN"),
        ("SCALEMESH_PROXY_METRICS_HOSTS", "localhost", "under SCALEMESH_ROOT_DOMAIN"),
        ("SCALEMESH_PROXY_METRICS_HOSTS", "bad_name.svc", "is not a hostname"),
        ("SCALEMESH_METRICS_TOKEN", "short", "at least 16 characters"),
    ],
)
def test_metrics_settings_are_checked(
    make_settings: Callable[..., Settings], variable: str, raw: str, error: str
) -> None:
    with pytest.raises(SettingsError, match=error) as caught:
        make_settings(**{variable: raw})

    assert variable in str(caught.value)


def test_metrics_settings_are_read(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        SCALEMESH_METRICS_TOKEN="t" * 16,
        SCALEMESH_PROXY_METRICS_HOSTS="A.internal, a.internal ,b.internal",
    )

    assert settings.metrics_token is not None
    assert settings.metrics_token.reveal() == "t" * 16
    assert settings.proxy_metrics_hosts == ("a.internal", "b.internal")
    assert settings.describe()["SCALEMESH_METRICS_TOKEN"] == "***"
    assert make_settings().metrics_token is None


async def test_only_reads_get_metrics(served: Served) -> None:
    response = await served.http.post("/metrics", headers={"host": "10.1.2.3"})

    assert response.status_code == 404
    assert "scalemesh_proxy" not in response.text


async def test_a_file_the_server_sends_itself_counts_its_size(tmp_path: Path) -> None:
    """ASGI pathsend (a server that sends a large local file itself): its size is what was sent."""
    big = tmp_path / "video.mp4"
    big.write_bytes(b"v" * 123_456)
    sent, messages = Sent(), []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    counted = counting(send, sent)
    length = (b"content-length", b"123456")  # the proxy always sends it
    await counted({"type": "http.response.start", "status": 200, "headers": [length]})
    await counted({"type": "http.response.pathsend", "path": str(big)})
    await counted({"type": "http.response.trailers", "headers": [], "more_trailers": False})

    assert sent.bytes == 123_456
    assert sent.statuses == {200: 1}
    assert [message["type"] for message in messages] == [
        "http.response.start",
        "http.response.pathsend",
        "http.response.trailers",
    ]
