"""What a site's rules can reach through the proxy: its own deployment's files, nothing else.

A rewrite serves another file at the requested URL, so its destination is a path the proxy
reads for the site. Whatever a repository writes there (`..`, escaped dots and slashes,
backslashes, a second round of escapes, another project's prefix), the proxy reads no file
outside the deployment's own: each such rule answers as a rewrite to a missing file does (the
deployment's 404, or with Netlify's rules its fallback), and another deployment's or another
tenant's files are never served. Redirects may go anywhere (that is the site's own choice), so
they are not checked here.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.settings import Settings
from app.storage.choice import storage_from_settings
from builder.spec import output_prefix
from proxy.asgi import running
from tests.support.proxy import DEPLOYMENT, OTHER, Served, seed
from tests.support.site_rules import netlify, ship_site, vercel

pytestmark = pytest.mark.anyio

SECRET = b"<h1>someone else's page</h1>"
INDEX = b"<h1>home</h1>"
FILES = {"index.html": INDEX, "page.html": b"<h1>page</h1>"}
ESCAPES = [
    f"/../{OTHER}/secret.html",
    f"/%2e%2e/{OTHER}/secret.html",
    f"/..%2f{OTHER}%2fsecret.html",
    f"/..\\{OTHER}\\secret.html",
    f"/%252e%252e/{OTHER}/secret.html",
    f"/./../{OTHER}/secret.html",
    f"/page.html/../../{OTHER}/secret.html",
    "/../../{other_project}/" + DEPLOYMENT + "/secret.html",
    "/%2e%2e/%2e%2e/{other_project}/" + DEPLOYMENT + "/secret.html",
    "//other.localhost:8080/secret.html",
    "/\\other.localhost/secret.html",
]
"""Destinations reaching for the same project's other deployment, another project's, another
tenant's hostname (protocol-relative: a rewrite never fetches a URL; absolute ones do not
compile)."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sources(destinations: list[str], kind: str) -> tuple[dict[str, bytes], Any]:
    """The site's files and manifest rules rewriting `/r<n>` to each destination."""
    if kind == "_redirects":
        lines = "".join(f"/r{n} {to} 200\n" for n, to in enumerate(destinations))
        return {**FILES, "_redirects": lines.encode()}, None
    status = {"status": 200} if kind == "netlify.toml" else {}
    rules = [{"source": f"/r{n}", "destination": to, **status} for n, to in enumerate(destinations)]
    if kind == "netlify.toml":
        return FILES, netlify(redirects=rules)
    return FILES, vercel(rewrites=rules)


async def answers(settings: Settings, kind: str) -> list[Any]:
    """What the deployment answers for each escape, once another deployment of its project
    and another project's deployment each hold a page."""
    project_id = await seed(settings)
    storage = storage_from_settings(settings.storage)
    await storage.put(output_prefix(project_id, OTHER) + "secret.html", SECRET)
    await storage.put(output_prefix(project_id + 1, DEPLOYMENT) + "secret.html", SECRET)
    destinations = [escape.format(other_project=project_id + 1) for escape in ESCAPES]
    await ship_site(settings, project_id, *sources(destinations, kind))
    async with running(settings) as proxy:
        served = Served(proxy)
        try:
            return [await served.get(f"/r{n}") for n in range(len(ESCAPES))]
        finally:
            await served.http.aclose()


@pytest.mark.parametrize(
    ("kind", "status", "body"),
    [
        ("vercel.json", 404, None),
        # Netlify's rewrite to no file falls through: the single-page app's fallback.
        ("netlify.toml", 200, INDEX),
        ("_redirects", 200, INDEX),
    ],
)
async def test_rewrites_read_only_the_deployments_own_files(
    settings: Settings, kind: str, status: int, body: bytes | None
) -> None:
    responses = await answers(settings, kind)

    for destination, response in zip(ESCAPES, responses, strict=True):
        assert SECRET not in response.content, destination
        assert response.status_code == status, destination
        assert body is None or response.content == body, destination
