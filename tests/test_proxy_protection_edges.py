"""The gate's less-travelled paths: a full cookie memory, odd queries, hand-offs to open hosts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest

from app import preview_tokens as tokens
from app.settings import Settings
from proxy import protection
from proxy.asgi import running
from proxy.serve import ProxyResponse
from tests.support.protection import BRANCH_HOST, BYPASS, PRODUCTION_HOST, cookie, protect
from tests.support.proxy import INDEX, Served, seed

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    """Project `web` protected as `previews`, with bypass secret `BYPASS`, behind a proxy."""
    async with running(settings) as proxy:
        answer = Served(proxy)
        await protect(await seed(settings), "previews", bypass=BYPASS)
        yield answer
        await answer.http.aclose()


async def test_a_full_memory_of_verified_cookies_is_emptied_and_refilled(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protection, "VERIFIED_KEPT", 1)
    now = time.time()
    first, second = cookie(now=now), cookie(now=now - 10)  # two different valid cookies

    answers = [await served.get("/", host=BRANCH_HOST, cookie=c) for c in (first, second)]
    again = await served.get("/", host=BRANCH_HOST, cookie=first)

    assert [(a.status_code, a.content) for a in (*answers, again)] == [(200, INDEX)] * 3
    remembered = {part for _, part in served.proxy.gate._verified}
    assert remembered == {first.encode()}  # each new cookie emptied the memory first


async def test_the_bypass_query_keeps_other_parameters_and_drops_empty_ones(
    served: Served,
) -> None:
    response = await served.get(f"/docs?a=1&&{tokens.BYPASS_PARAM}={BYPASS}&", host=BRANCH_HOST)

    assert response.status_code == 302
    assert response.headers["location"] == "/docs?a=1"
    assert response.headers["set-cookie"].startswith(f"{tokens.COOKIE_NAME}=")


async def test_a_hand_off_to_an_unknown_host_is_not_found(served: Served) -> None:
    response = await served.get(
        f"{tokens.AUTH_PATH}?{urlencode({'next': '/docs'})}", host="nothing-here.localhost:8080"
    )

    assert response.status_code == 404
    assert "set-cookie" not in response.headers


async def test_a_hand_off_to_an_open_host_goes_on_without_a_cookie(served: Served) -> None:
    response = await served.get(
        f"{tokens.AUTH_PATH}?{urlencode({'token': 'x', 'next': '/docs?a=1'})}",
        host=PRODUCTION_HOST,
    )
    elsewhere = await served.get(
        f"{tokens.AUTH_PATH}?{urlencode({'next': '//evil.example/'})}", host=PRODUCTION_HOST
    )

    assert (response.status_code, response.headers["location"]) == (302, "/docs?a=1")
    assert "set-cookie" not in response.headers
    assert (elsewhere.status_code, elsewhere.headers["location"]) == (302, "/")


def test_an_answer_without_cache_control_is_made_private() -> None:
    answer = ProxyResponse(status=200, headers=[("content-type", "text/html")], body=b"hi")

    made = protection.private(answer)

    assert made.headers == [("content-type", "text/html"), ("cache-control", "private")]
    assert made.body == b"hi"
