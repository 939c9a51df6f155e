"""A recording fake of the GitHub REST API routes Scale Mesh calls, for tests.

`FakeGitHubApi` keeps GitHub's side of the story (installation tokens it minted, commit statuses,
deployments with their statuses, issue comments) and records every request it received, so tests
assert on exactly what GitHub was told. Use it either way:

    with FakeGitHubApi() as github:           # respx: intercepts httpx process-wide, all threads
        ...
    client = GitHubAppClient(settings.github, github.base_url, transport=github.transport)

Limits of the `with` form: respx patches httpcore for the whole process while the block is open,
so an app served by uvicorn in a thread of this process talks to the fake too (the app must run
inside the block, and must not run in a subprocess). Requests to any other host (a test's own
httpx client calling that uvicorn on 127.0.0.1) pass through to the network untouched. Requests
made through `transport` do not need the `with` block. The state is guarded by a lock, because
side effects run in whichever thread sent the request.

The records it keeps and the JSON shapes it answers with are in `tests.support.github_shapes`.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import respx
from cryptography.hazmat.primitives import serialization

from tests.support.github_refs_fake import FakeRefs
from tests.support.github_shapes import (
    NEEDS,
    ROUTE_PATTERNS,
    ROUTES,
    TIME_FORMAT,
    Call,
    FakeComment,
    FakeDeployment,
    MintedToken,
    app_private_key,
    comment_json,
    commit_status_json,
    deployment_json,
    deployment_status_json,
    error,
    page_links,
    raw,
    repository_json,
)

API_URL = "https://api.github.com"
APP_ID = 4242
WEBHOOK_SECRET = "test-webhook-secret"


@dataclass
class _Failure:
    status: int
    body: Any
    headers: dict[str, str]
    error: Exception | None
    times: int | None
    only: str | None


class FakeGitHubApi:
    """GitHub's REST API as far as Scale Mesh uses it, in memory. See the module docstring.

    `private_key` is the App key the fake checks JWTs against (RS256, `iss` = `app_id`);
    `token_ttl` is the life of each installation token it mints; `max_per_page` caps the page
    size of comment lists (GitHub's cap is 100), so pagination can be tested with few comments.
    """

    def __init__(
        self,
        base_url: str = API_URL,
        *,
        app_id: int = APP_ID,
        private_key: str | None = None,
        token_ttl: timedelta = timedelta(hours=1),
        max_per_page: int = 100,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.private_key = private_key or app_private_key()
        self.token_ttl = token_ttl
        self.max_per_page = max_per_page
        self.calls: list[Call] = []
        self.tokens: list[MintedToken] = []
        self.commit_statuses: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.deployments: dict[int, FakeDeployment] = {}
        self.comments: dict[int, FakeComment] = {}
        self.refs = FakeRefs()
        self._failures: dict[str, _Failure] = {}
        self._lock = threading.RLock()
        self._next_id = 1000
        url = httpx.URL(self.base_url)
        self._prefix = url.path.rstrip("/")
        self._router = respx.mock(assert_all_called=False, assert_all_mocked=True)
        self._router.route(url__startswith=self.base_url + "/").mock(side_effect=self.handle)
        self._router.route().pass_through()

    # --- use -------------------------------------------------------------------------------

    def __enter__(self) -> FakeGitHubApi:
        self._router.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._router.__exit__(exc_type, exc, traceback)

    @property
    def transport(self) -> httpx.MockTransport:
        """A transport answering from this fake, for `GitHubAppClient(..., transport=...)`."""
        return httpx.MockTransport(self.handle)

    def environ(self) -> dict[str, str]:
        """`SCALEMESH_GITHUB_*` variables for `make_settings(**fake.environ())`."""
        return {
            "SCALEMESH_GITHUB_APP_ID": str(self.app_id),
            "SCALEMESH_GITHUB_PRIVATE_KEY": self.private_key,
            "SCALEMESH_GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SCALEMESH_GITHUB_API_URL": self.base_url,
        }

    # --- GitHub-side actions ----------------------------------------------------------------

    def add_comment(
        self, repository: str, number: int, body: str, *, login: str = "octocat"
    ) -> FakeComment:
        """A comment someone (by default, not the App) wrote on issue/PR `number`."""
        with self._lock:
            comment = FakeComment(self._new_id(), repository, number, body, login)
            self.comments[comment.id] = comment
            return comment

    def delete_comment(self, comment_id: int) -> None:
        """Delete a comment as a user would on github.com: editing it then answers 404."""
        with self._lock:
            del self.comments[comment_id]

    def revoke_tokens(self) -> None:
        """Revoke every installation token minted so far: using one answers 401."""
        with self._lock:
            for token in self.tokens:
                token.revoked = True

    def fail(
        self,
        route: str,
        *,
        status: int = 500,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        error: Exception | None = None,
        times: int | None = None,
        only: str | None = None,
    ) -> None:
        """Make `route` (one of `ROUTES`) answer `status`, `body` and `headers`, or raise `error`.

        `only`: fail just the requests whose path or JSON body contains this text (a sha, a
        repository); the others are served as usual and do not count against `times`.

        `body` may be JSON-able, or `str`/`bytes` sent as is (for malformed answers); the default
        is GitHub's error object. `error` is an httpx exception such as `httpx.ConnectError` or
        `httpx.ReadTimeout`: the request never reaches GitHub. `times=None` fails until `heal()`.
        The failing requests are still recorded in `calls`.
        """
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; one of {', '.join(ROUTES)}")
        with self._lock:
            self._failures[route] = _Failure(status, body, dict(headers or {}), error, times, only)

    def heal(self, route: str | None = None) -> None:
        """Stop failing `route`, or every route."""
        with self._lock:
            if route is None:
                self._failures.clear()
            else:
                self._failures.pop(route, None)

    # --- what GitHub saw ---------------------------------------------------------------------

    def calls_to(self, method: str, path: str) -> list[Call]:
        """Recorded calls with this method whose path (without the query) equals `path`."""
        with self._lock:
            return [
                call
                for call in self.calls
                if call.method == method and call.path.partition("?")[0] == path
            ]

    def comments_on(self, repository: str, number: int) -> list[FakeComment]:
        with self._lock:
            return [
                c
                for c in self.comments.values()
                if (c.repository, c.number) == (repository, number)
            ]

    # --- serving -----------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as GitHub would (also the respx side effect)."""
        path = request.url.path
        if path.startswith(self._prefix):
            path = path[len(self._prefix) :]
        query = request.url.query.decode()
        try:
            body = json.loads(request.content) if request.content else None
        except ValueError:
            body = request.content.decode(errors="replace")
        authorization = request.headers.get("authorization")
        with self._lock:
            self.calls.append(
                Call(request.method, f"{path}?{query}" if query else path, body, authorization)
            )
            for name, method, pattern in ROUTE_PATTERNS:
                match = pattern.fullmatch(path)
                if match and request.method == method:
                    return self._serve(name, match.groupdict(), request, body, authorization)
            return error(404, "Not Found")

    def _serve(
        self,
        name: str,
        params: dict[str, str],
        request: httpx.Request,
        body: Any,
        authorization: str | None,
    ) -> httpx.Response:
        failure = self._failures.get(name)
        if failure is not None and failure.only is not None:
            sent = request.url.path + (json.dumps(body) if body is not None else "")
            if failure.only not in sent:
                failure = None
        if failure is not None:
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    del self._failures[name]
            if failure.error is not None:
                raise failure.error
            return raw(failure.status, failure.body, failure.headers)
        if name == "access_tokens":
            return self._mint(int(params["installation_id"]), body, authorization)
        refusal = self._authorize(name, params["repo"], authorization)
        if refusal is not None:
            return refusal
        handler: Callable[[dict[str, str], Any, httpx.Request], httpx.Response] = getattr(
            self, f"_{name}"
        )
        return handler(params, body, request)

    def _mint(self, installation_id: int, body: Any, authorization: str | None) -> httpx.Response:
        scheme, _, credential = (authorization or "").partition(" ")
        if scheme != "Bearer":
            return error(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(credential, self._public_key(), algorithms=["RS256"])
        except jwt.PyJWTError:
            return error(401, "A JSON web token could not be decoded")
        if claims.get("iss") != str(self.app_id):
            return error(401, "'Issuer' claim ('iss') must be an Integer")
        body = body or {}
        expires_at = (datetime.now(UTC) + self.token_ttl).replace(microsecond=0)
        minted = MintedToken(
            token=f"ghs_{secrets.token_hex(18)}",
            installation_id=installation_id,
            repositories=body.get("repositories"),
            permissions=body.get("permissions"),
            expires_at=expires_at,
        )
        self.tokens.append(minted)
        answer: dict[str, Any] = {
            "token": minted.token,
            "expires_at": expires_at.strftime(TIME_FORMAT),
            "permissions": minted.permissions
            or {"contents": "read", "metadata": "read", "statuses": "write"},
            "repository_selection": "selected" if minted.repositories else "all",
        }
        if minted.repositories:
            answer["repositories"] = [
                repository_json(f"octo-org/{name}") for name in minted.repositories
            ]
        return httpx.Response(201, json=answer)

    def _authorize(
        self, route: str, repository: str, authorization: str | None
    ) -> httpx.Response | None:
        scheme, _, credential = (authorization or "").partition(" ")
        token = next((t for t in self.tokens if t.token == credential), None)
        if (
            scheme != "token"
            or token is None
            or token.revoked
            or token.expires_at <= datetime.now(UTC)
        ):
            return error(401, "Bad credentials")
        if token.repositories is not None and repository.split("/")[1] not in token.repositories:
            return error(404, "Not Found")
        if token.permissions is not None:
            permission, level = NEEDS[route]
            granted = token.permissions.get(permission)
            if granted is None or (level == "write" and granted != "write"):
                return error(403, "Resource not accessible by integration")
        return None

    def _commit_status(
        self, params: dict[str, str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        key = (params["repo"], params["sha"])
        self.commit_statuses.setdefault(key, []).append(body)
        answer = commit_status_json(self.base_url, key[0], key[1], self._new_id(), body)
        return httpx.Response(201, json=answer)

    def _create_deployment(
        self, params: dict[str, str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        deployment = FakeDeployment(self._new_id(), params["repo"], body)
        self.deployments[deployment.id] = deployment
        return httpx.Response(201, json=deployment_json(self.base_url, deployment))

    def _deployment_status(
        self, params: dict[str, str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        deployment = self.deployments.get(int(params["deployment_id"]))
        if deployment is None or deployment.repository != params["repo"]:
            return error(404, "Not Found")
        deployment.statuses.append(body)
        answer = deployment_status_json(self.base_url, deployment, self._new_id(), body)
        return httpx.Response(201, json=answer)

    def _list_comments(
        self, params: dict[str, str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        query = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
        per_page = min(int(query.get("per_page", "30")), self.max_per_page)
        page = int(query.get("page", "1"))
        comments = sorted(
            self.comments_on(params["repo"], int(params["number"])), key=lambda c: c.id
        )
        last = max(1, -(-len(comments) // per_page))
        chunk = comments[(page - 1) * per_page : page * per_page]
        url = f"{self.base_url}/repos/{params['repo']}/issues/{params['number']}/comments"
        links = page_links(url, page, last, per_page)
        headers = {"Link": ", ".join(links)} if links else {}
        return httpx.Response(
            200, json=[comment_json(self.base_url, c) for c in chunk], headers=headers
        )

    def _create_comment(
        self, params: dict[str, str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        comment = FakeComment(self._new_id(), params["repo"], int(params["number"]), body["body"])
        self.comments[comment.id] = comment
        return httpx.Response(201, json=comment_json(self.base_url, comment))

    def _update_comment(
        self, params: dict[str, str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        comment = self.comments.get(int(params["comment_id"]))
        if comment is None or comment.repository != params["repo"]:
            return error(404, "Not Found")
        comment.body = body["body"]
        return httpx.Response(200, json=comment_json(self.base_url, comment))

    def _get_branch(
        self, params: dict[str, str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        return self.refs.get_branch(params["repo"], params["branch"])

    def _get_commit(
        self, params: dict[str, str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        return self.refs.get_commit(params["repo"], params["ref"])

    # --- helpers ------------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _public_key(self) -> Any:
        key = serialization.load_pem_private_key(self.private_key.encode(), password=None)
        return key.public_key()
