"""Protected deployments through the real proxy: the cookie, the hand-off, the bypass secret.

Project `web` (`tests.support.proxy.seed`) serves one deployment at `web` (production) and
`web-git-feature` (a branch); what each visitor gets depends on the project's protection.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from app import preview_tokens as tokens
from app.projects.service import refresh_aliases
from app.settings import Settings
from app.tables import Project
from proxy.asgi import running
from tests.support.protection import (
    BRANCH,
    BRANCH_HOST,
    BYPASS,
    KEY,
    PRODUCTION_HOST,
    cookie,
    handoff,
    protect,
)
from tests.support.proxy import INDEX, Served, seed
from tests.support.waiting import eventually_async

pytestmark = pytest.mark.anyio

Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def serve(settings: Settings) -> AsyncIterator[Serve]:
    """Seed `web` with a protection level, then serve it: `await serve("previews")`."""
    async with running(settings) as proxy:
        served = Served(proxy)

        async def start(protection: str, *, bypass: str | None = None) -> Served:
            project_id = await seed(settings)
            await protect(project_id, protection, bypass=bypass)
            return served

        yield start
        await served.http.aclose()


def assert_sent_to_sign_in(response: httpx.Response, next_path: str = "/") -> None:
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc, location.path) == (
        "http",
        "localhost:8000",
        "/auth/deployment",
    )
    assert parse_qs(location.query) == {"host": [f"{BRANCH}.localhost"], "next": [next_path]}
    assert response.content != INDEX


async def test_a_protected_preview_without_a_cookie_is_sent_to_the_api(serve: Serve) -> None:
    served = await serve("previews")

    response = await served.get("/docs/page?a=1&b=2", host=BRANCH_HOST)

    assert_sent_to_sign_in(response, "/docs/page?a=1&b=2")
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers


async def test_a_valid_cookie_is_served_and_a_remembered_answer_is_not_replayed_without_it(
    serve: Serve,
) -> None:
    served = await serve("previews")

    first = await served.get("/", host=BRANCH_HOST, cookie=cookie())
    again = await served.get("/", host=BRANCH_HOST, cookie=f"other=1; {cookie()}")
    without = await served.get("/", host=BRANCH_HOST)

    assert (first.status_code, first.content) == (200, INDEX)
    assert (again.status_code, again.content) == (200, INDEX)
    assert_sent_to_sign_in(without)


async def test_a_remembered_cookie_stops_working_when_it_expires(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = await serve("previews")
    signed_at = time.time()
    short = cookie(lifetime=60, now=signed_at)

    first = await served.get("/", host=BRANCH_HOST, cookie=short)
    again = await served.get("/", host=BRANCH_HOST, cookie=short)  # remembered: no HMAC
    monkeypatch.setattr(time, "time", lambda: signed_at + 61)
    expired = await served.get("/", host=BRANCH_HOST, cookie=short)

    assert (first.status_code, again.status_code) == (200, 200)
    assert_sent_to_sign_in(expired)


@pytest.mark.parametrize(
    "presented",
    [
        cookie(name="web-git-other"),  # signed for another host
        cookie(name="web"),
        cookie(lifetime=-1),  # expired
        cookie(now=time.time() - tokens.COOKIE_SECONDS - 5),
        f"{tokens.COOKIE_NAME}={handoff()}",  # a hand-off token is not a cookie
        f"{tokens.COOKIE_NAME}=9999999999.forged",
        f"{tokens.COOKIE_NAME}=",
    ],
    ids=["other-host", "production-host", "expired", "long-expired", "handoff", "forged", "empty"],
)
async def test_a_cookie_for_another_host_or_expired_or_forged_is_refused(
    serve: Serve, presented: str
) -> None:
    served = await serve("previews")

    response = await served.get("/", host=BRANCH_HOST, cookie=presented)

    assert_sent_to_sign_in(response)


async def test_the_hand_off_sets_a_host_only_cookie_and_goes_on_to_next(serve: Serve) -> None:
    served = await serve("previews")
    query = f"token={handoff()}&next=%2Fdocs%3Fa%3D1"

    response = await served.get(f"{tokens.AUTH_PATH}?{query}", host=BRANCH_HOST)

    assert response.status_code == 302
    assert response.headers["location"] == "/docs?a=1"
    set_cookie = response.headers["set-cookie"]
    name, _, rest = set_cookie.partition("=")
    value = rest.split(";")[0]
    attributes = [part.strip().lower() for part in set_cookie.split(";")[1:]]
    assert name == tokens.COOKIE_NAME
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert not any(attribute.startswith("domain") for attribute in attributes)
    assert "secure" not in attributes  # plain http here
    assert tokens.verify(KEY, tokens.COOKIE, BRANCH, value)
    served.http.cookies.clear()  # sent by hand below, as a browser would send it to this host
    served_with_it = await served.get("/", host=BRANCH_HOST, cookie=f"{tokens.COOKIE_NAME}={value}")
    assert (served_with_it.status_code, served_with_it.content) == (200, INDEX)


@pytest.mark.parametrize(
    "next_value", ["//evil.example/x", "https://evil.example/", "x", "/\\evil"]
)
async def test_the_hand_off_goes_nowhere_but_this_host(serve: Serve, next_value: str) -> None:
    served = await serve("previews")

    query = urlencode({"token": handoff(), "next": next_value})
    response = await served.get(f"{tokens.AUTH_PATH}?{query}", host=BRANCH_HOST)

    assert response.status_code == 302
    assert response.headers["location"] == "/"


@pytest.mark.parametrize(
    "token",
    [
        handoff(now=time.time() - tokens.HANDOFF_SECONDS - 1),  # expired
        handoff(name="web-git-other"),  # for another host
        cookie().partition("=")[2],  # a cookie is not a hand-off token
        "",
    ],
    ids=["expired", "other-host", "cookie", "empty"],
)
async def test_a_bad_or_expired_hand_off_token_is_refused(serve: Serve, token: str) -> None:
    served = await serve("previews")

    response = await served.get(
        f"{tokens.AUTH_PATH}?{urlencode({'token': token})}", host=BRANCH_HOST
    )

    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    assert response.content != INDEX


async def test_the_bypass_header_is_served(serve: Serve) -> None:
    served = await serve("previews", bypass=BYPASS)

    response = await served.get("/", host=BRANCH_HOST, **{tokens.BYPASS_HEADER: BYPASS})
    after = await served.get("/", host=BRANCH_HOST)

    assert (response.status_code, response.content) == (200, INDEX)
    assert "set-cookie" not in response.headers
    assert_sent_to_sign_in(after)


async def test_the_bypass_query_sets_the_cookie_and_drops_the_parameter(serve: Serve) -> None:
    served = await serve("previews", bypass=BYPASS)

    response = await served.get(f"/docs?a=1&{tokens.BYPASS_PARAM}={BYPASS}&b=2", host=BRANCH_HOST)

    assert response.status_code == 302
    assert response.headers["location"] == "/docs?a=1&b=2"
    value = response.headers["set-cookie"].partition("=")[2].split(";")[0]
    served.http.cookies.clear()
    followed = await served.get("/", host=BRANCH_HOST, cookie=f"{tokens.COOKIE_NAME}={value}")
    assert (followed.status_code, followed.content) == (200, INDEX)


@pytest.mark.parametrize("where", ["header", "query"])
async def test_a_wrong_bypass_secret_is_sent_to_sign_in(serve: Serve, where: str) -> None:
    served = await serve("previews", bypass=BYPASS)

    if where == "header":
        response = await served.get("/", host=BRANCH_HOST, **{tokens.BYPASS_HEADER: "wrong"})
        assert_sent_to_sign_in(response)
    else:
        response = await served.get(f"/?{tokens.BYPASS_PARAM}=wrong", host=BRANCH_HOST)
        assert_sent_to_sign_in(response, f"/?{tokens.BYPASS_PARAM}=wrong")
    assert "set-cookie" not in response.headers


async def test_without_a_bypass_secret_none_is_accepted(serve: Serve) -> None:
    served = await serve("previews")

    response = await served.get("/", host=BRANCH_HOST, **{tokens.BYPASS_HEADER: ""})

    assert_sent_to_sign_in(response)


async def test_an_unprotected_project_serves_every_host_openly(serve: Serve) -> None:
    served = await serve("none")

    for host in (BRANCH_HOST, PRODUCTION_HOST):
        response = await served.get("/", host=host)
        assert (response.status_code, response.content) == (200, INDEX), host


async def test_previews_leave_the_production_alias_open(serve: Serve) -> None:
    served = await serve("previews")

    production = await served.get("/", host=PRODUCTION_HOST)
    preview = await served.get("/", host=BRANCH_HOST)

    assert (production.status_code, production.content) == (200, INDEX)
    assert preview.status_code == 302


async def test_all_protects_production_too(serve: Serve) -> None:
    served = await serve("all")

    response = await served.get("/", host=PRODUCTION_HOST)
    with_cookie = await served.get("/", host=PRODUCTION_HOST, cookie=cookie(name="web"))

    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["location"]).query)["host"] == ["web.localhost"]
    assert (with_cookie.status_code, with_cookie.content) == (200, INDEX)


async def test_a_protection_change_reaches_a_proxy_that_cached_the_host(
    settings: Settings,
) -> None:
    project_id = await seed(settings)
    await protect(project_id, "none")
    async with running(settings) as proxy:
        served = Served(proxy)
        assert (await served.get("/", host=BRANCH_HOST)).status_code == 200
        assert (await served.get("/", host="www.web.dev")).status_code == 200
        await Project.update({Project.protection: "all"}).where(Project.id == project_id)
        hostnames = await refresh_aliases(project_id)
        # The custom domain `www.web.dev` is no alias: it goes with the label it follows.
        assert sorted(hostnames) == sorted([BRANCH, "web"])

        async def protected_now() -> bool:
            answers = [await served.get("/", host=host) for host in (BRANCH_HOST, "www.web.dev")]
            return [answer.status_code for answer in answers] == [302, 302]

        await eventually_async(protected_now, what="the proxy protecting the preview")
        await served.http.aclose()


async def test_protected_answers_are_private_and_open_ones_keep_their_caching(
    serve: Serve,
) -> None:
    served = await serve("previews")
    asset = "/assets/app-1a2b3c4d.js"

    protected = await served.get(asset, host=BRANCH_HOST, cookie=cookie())
    replayed = await served.get(asset, host=BRANCH_HOST, cookie=cookie())
    open_asset = await served.get(asset, host=PRODUCTION_HOST)

    for answer in (protected, replayed):
        assert answer.status_code == 200
        directives = [d.strip() for d in answer.headers["cache-control"].split(",")]
        assert directives[0] == "private"
        assert "public" not in directives
        assert "immutable" in directives
    assert open_asset.headers["cache-control"].startswith("public")


async def test_over_https_the_cookie_is_secure(serve: Serve) -> None:
    served = await serve("previews")

    response = await served.http.get(
        f"https://{BRANCH}.localhost{tokens.AUTH_PATH}?{urlencode({'token': handoff()})}"
    )

    assert response.status_code == 302
    attributes = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
    assert "secure" in attributes
