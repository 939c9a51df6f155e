"""A protected project's custom domains: protected as the label each follows (a production
domain as production), with cookies bound to the domain and its project, so none opens another
hostname, nor the same name once another project has taken it over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from app import preview_tokens as tokens
from app.settings import Settings
from app.tables import Domain
from proxy.asgi import running
from tests.support.protection import BRANCH, KEY, cookie, protect
from tests.support.proxy import INDEX, Served, seed

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def serve(settings: Settings, protection: str) -> AsyncIterator[tuple[Served, int]]:
    project_id = await seed(settings)
    await protect(project_id, protection)  # adds the branch alias `web-git-feature`
    await Domain.insert(
        Domain(
            name="feature.web.dev",
            project=project_id,
            git_branch="feature",
            token="t" * 32,
            verified_at=datetime.now(UTC),
        )
    )
    async with running(settings) as proxy:
        served = Served(proxy)
        yield served, project_id
        await served.http.aclose()


@pytest.fixture
async def all_protected(settings: Settings) -> AsyncIterator[tuple[Served, int]]:
    async for pair in serve(settings, "all"):
        yield pair


@pytest.fixture
async def previews_protected(settings: Settings) -> AsyncIterator[tuple[Served, int]]:
    async for pair in serve(settings, "previews"):
        yield pair


def bound_cookie(name: str, project_id: int) -> str:
    return cookie(name=tokens.binding(name, project_id))


async def test_with_previews_a_production_domain_is_open_and_a_branch_domain_is_not(
    previews_protected: tuple[Served, int],
) -> None:
    served, project_id = previews_protected

    production = await served.get("/", host="www.web.dev")
    branch = await served.get("/", host="feature.web.dev")
    with_cookie = await served.get(
        "/", host="feature.web.dev", cookie=bound_cookie("feature.web.dev", project_id)
    )

    assert (production.status_code, production.content) == (200, INDEX)
    assert branch.status_code == 302
    assert parse_qs(urlsplit(branch.headers["location"]).query)["host"] == ["feature.web.dev"]
    assert (with_cookie.status_code, with_cookie.content) == (200, INDEX)


async def test_with_all_a_domain_opens_only_with_its_own_bound_cookie(
    all_protected: tuple[Served, int],
) -> None:
    served, project_id = all_protected
    host = "www.web.dev"

    refused = [
        cookie(name=host),  # the name alone, as a label's cookie would be
        bound_cookie(host, project_id + 1),  # the same name under another project
        cookie(name="web"),  # the production label's cookie
        bound_cookie("feature.web.dev", project_id),  # a sibling domain's
        cookie(name=BRANCH),
    ]
    for value in refused:
        response = await served.get("/", host=host, cookie=value)
        assert response.status_code == 302, value
    opened = await served.get("/", host=host, cookie=bound_cookie(host, project_id))
    label = await served.get("/", cookie=bound_cookie(host, project_id))

    assert (opened.status_code, opened.content) == (200, INDEX)
    assert label.status_code == 302, "a domain's cookie opens no label"


async def test_the_hand_off_on_a_domain_sets_a_cookie_bound_to_it(
    all_protected: tuple[Served, int],
) -> None:
    served, project_id = all_protected
    host = "www.web.dev"
    token = tokens.sign(KEY, tokens.HANDOFF, tokens.binding(host, project_id), 60)
    unbound = tokens.sign(KEY, tokens.HANDOFF, host, 60)

    refused = await served.get(f"/_scalemesh/auth?token={unbound}&next=/", host=host)
    handed = await served.get(f"/_scalemesh/auth?token={token}&next=/docs", host=host)

    assert refused.status_code == 403
    assert handed.status_code == 302
    assert handed.headers["location"] == "/docs"
    set_cookie = handed.headers["set-cookie"].split(";")[0]
    opened = await served.get("/", host=host, cookie=set_cookie)
    assert (opened.status_code, opened.content) == (200, INDEX)
