"""How a config file's rules meet a site's own `_redirects` and `_headers` (in memory)."""

from __future__ import annotations

import pytest

from tests.support.proxy_site import SITE, get, make
from tests.support.site_rules import netlify, vercel

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_vercel_site_keeps_its_redirects_file_after_the_config_redirects() -> None:
    rules = vercel(redirects=[{"source": "/a", "destination": "/from-config", "status": 307}])
    site = await make(redirects="/a /from-file 302\n/b /from-file 302\n/about /x 302", rules=rules)
    assert (await get(site, "/a")).header("location") == "/from-config"
    assert (await get(site, "/b")).header("location") == "/from-file"
    assert (await get(site, "/about.html")).status == 200  # a file shadows `/about` in _redirects


async def test_a_header_rule_may_set_what_the_proxy_defaults() -> None:
    rules = vercel(
        headers=[{"source": "/(.*)", "headers": [["X-Content-Type-Options", "nosniff"]]}]
    )
    response = await get(await make(rules=rules), "/")
    assert [value for name, value in response.headers if name == "x-content-type-options"] == [
        "nosniff"
    ]


async def test_only_conditions_on_headers_or_cookies_make_answers_personal() -> None:
    by_query = netlify(
        headers=[
            {"source": "/*", "headers": [["X-A", "1"]], "has": [{"type": "query", "key": "q"}]}
        ]
    )
    by_cookie = vercel(
        headers=[
            {"source": "/(.*)", "headers": [["X-A", "1"]], "has": [{"type": "cookie", "key": "c"}]}
        ]
    )
    assert not (await make()).reads_headers
    assert not (await make(rules=by_query)).reads_headers
    site = await make(rules=by_cookie)
    assert site.reads_headers
    assert (await get(site, "/", headers=(("cookie", "c=1"),))).header("x-a") == "1"
    assert (await get(site, "/")).header("x-a") is None


async def test_a_manifest_without_rules_keeps_the_default_order() -> None:
    site = await make(SITE)
    assert site.config is None
    assert (await get(site, "/about.html")).header("location") == "/about"
