"""Drive the API in process: the test client, an offline ref resolver, accounts and tokens."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from litestar.testing import TestClient

from app.refs import RefError, ResolvedRef, is_ref_name
from app.settings import Settings

T = TypeVar("T")

TEST_SECRET_KEY = "test-secret-key-" + "x" * 32
TEST_PREVIEW_KEY = "test-preview-key-" + "y" * 32
PASSWORD = "correct horse battery"


class Client(TestClient[Any]):
    """A test client that can also run database queries inside the app's event loop."""

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        async def call() -> T:
            return await make()

        return self.blocking_portal.call(call)


class OfflineResolver:
    """Resolves every well-formed branch name to a made-up commit, asking no server."""

    async def resolve(self, git_url: str, ref: str) -> ResolvedRef:
        if not is_ref_name(ref):
            raise RefError(f"{ref!r} is not a branch, a tag or a full sha.")
        sha = hashlib.sha1(f"{git_url}#{ref}".encode()).hexdigest()  # noqa: S324 - not security
        return ResolvedRef(sha=sha, branch=ref, ref=ref)


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[Client]:
    """The API on `settings` (as the `client` fixture builds it), for tests that vary them."""
    from app.asgi import create_app

    app = create_app(settings, ref_resolver=OfflineResolver(), reconcile=False)
    with Client(app) as client:
        yield client


def sign_in(client: TestClient[Any], email: str, password: str = PASSWORD) -> str:
    """Sign in with a bearer token (no cookie kept); return the token."""
    response = client.post("/user/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    client.cookies.clear()
    token: str = response.json()["token"]
    return token


def sign_up(client: TestClient[Any], email: str = "ada@example.com") -> str:
    """Create an account and sign in with a bearer token; return the token."""
    assert (
        client.post("/user/signup", json={"email": email, "password": PASSWORD}).status_code == 201
    )
    response = client.post("/user/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    client.cookies.clear()
    token: str = response.json()["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
