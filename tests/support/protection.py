"""Protected deployments for the proxy and API tests: the rows, cookies and tokens they need.

`protect()` turns `tests.support.proxy.seed`'s project `web` into a protected one with a branch
alias (`web-git-feature`), and `cookie()`/`handoff()` sign what the proxy and the API would.
"""

from __future__ import annotations

from app import preview_tokens as tokens
from app.tables import Alias, Project
from tests.support.api import TEST_SECRET_KEY
from tests.support.proxy import DEPLOYMENT

KEY = tokens.preview_key(TEST_SECRET_KEY)
BRANCH = "web-git-feature"
BRANCH_HOST = f"{BRANCH}.localhost:8080"
PRODUCTION_HOST = "web.localhost:8080"
BYPASS = "let-me-in-" + "z" * 20


async def protect(project_id: int, protection: str, *, bypass: str | None = None) -> None:
    """Set the project's protection (and bypass secret) and add the branch alias."""
    stored = None if bypass is None else tokens.bypass_hash(KEY, bypass)
    await Project.update({Project.protection: protection, Project.bypass_hash: stored}).where(
        Project._meta.primary_key == project_id
    )
    await Alias.insert(Alias(hostname=BRANCH, project=project_id, deployment=DEPLOYMENT))


def cookie(
    name: str = BRANCH, lifetime: int = tokens.COOKIE_SECONDS, now: float | None = None
) -> str:
    """The `Cookie` header the proxy's own cookie for alias `name` makes."""
    return f"{tokens.COOKIE_NAME}={tokens.sign(KEY, tokens.COOKIE, name, lifetime, now)}"


def handoff(name: str = BRANCH, now: float | None = None) -> str:
    return tokens.sign(KEY, tokens.HANDOFF, name, tokens.HANDOFF_SECONDS, now)
