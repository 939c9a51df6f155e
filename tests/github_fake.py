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

Answers are real GitHub response shapes, trimmed to what githubkit's response models require;
`tests/test_github_client.py` validates each one against those models.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode

import httpx
import jwt
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

API_URL = "https://api.github.com"
APP_ID = 4242
WEBHOOK_SECRET = "test-webhook-secret"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""GitHub's timestamps; githubkit parses `expires_at` with exactly this format."""

BOT_LOGIN = "scalemesh[bot]"

ROUTES = (
    "access_tokens",
    "commit_status",
    "create_deployment",
    "deployment_status",
    "list_comments",
    "create_comment",
    "update_comment",
)
"""Route names for `FakeGitHubApi.fail()`; anything else under the API URL answers 404."""

_ROUTE_PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (name, method, re.compile(pattern))
    for name, method, pattern in (
        ("access_tokens", "POST", r"/app/installations/(?P<installation_id>\d+)/access_tokens"),
        ("commit_status", "POST", r"/repos/(?P<repo>[^/]+/[^/]+)/statuses/(?P<sha>[^/]+)"),
        ("create_deployment", "POST", r"/repos/(?P<repo>[^/]+/[^/]+)/deployments"),
        (
            "deployment_status",
            "POST",
            r"/repos/(?P<repo>[^/]+/[^/]+)/deployments/(?P<deployment_id>\d+)/statuses",
        ),
        ("list_comments", "GET", r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<number>\d+)/comments"),
        (
            "create_comment",
            "POST",
            r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<number>\d+)/comments",
        ),
        (
            "update_comment",
            "PATCH",
            r"/repos/(?P<repo>[^/]+/[^/]+)/issues/comments/(?P<comment_id>\d+)",
        ),
    )
)

# The permission each route needs, for tokens minted with a `permissions` restriction.
_NEEDS: Mapping[str, tuple[str, str]] = {
    "commit_status": ("statuses", "write"),
    "create_deployment": ("deployments", "write"),
    "deployment_status": ("deployments", "write"),
    "list_comments": ("issues", "read"),
    "create_comment": ("issues", "write"),
    "update_comment": ("issues", "write"),
}


@functools.cache
def app_private_key() -> str:
    """A throw-away RSA key for the test App, PEM (PKCS#1, as GitHub hands them out)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


class Call(NamedTuple):
    """One request GitHub received. `path` is relative to the API URL and keeps its query."""

    method: str
    path: str
    json: Any
    authorization: str | None


@dataclass
class MintedToken:
    token: str
    installation_id: int
    repositories: list[str] | None
    permissions: dict[str, str] | None
    expires_at: datetime
    revoked: bool = False


@dataclass
class FakeDeployment:
    id: int
    repository: str
    request: dict[str, Any]
    """The body of the POST that created it."""
    statuses: list[dict[str, Any]] = field(default_factory=list)
    """The body of each status POSTed to it, in order."""


@dataclass
class FakeComment:
    id: int
    repository: str
    number: int
    body: str
    login: str = BOT_LOGIN


@dataclass
class _Failure:
    status: int
    body: Any
    headers: dict[str, str]
    error: Exception | None
    times: int | None


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
    ) -> None:
        """Make `route` (one of `ROUTES`) answer `status`, `body` and `headers`, or raise `error`.

        `body` may be JSON-able, or `str`/`bytes` sent as is (for malformed answers); the default
        is GitHub's error object. `error` is an httpx exception such as `httpx.ConnectError` or
        `httpx.ReadTimeout`: the request never reaches GitHub. `times=None` fails until `heal()`.
        The failing requests are still recorded in `calls`.
        """
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; one of {', '.join(ROUTES)}")
        with self._lock:
            self._failures[route] = _Failure(status, body, dict(headers or {}), error, times)

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
            for name, method, pattern in _ROUTE_PATTERNS:
                match = pattern.fullmatch(path)
                if match and request.method == method:
                    return self._serve(name, match.groupdict(), request, body, authorization)
            return _error(404, "Not Found")

    def _serve(
        self,
        name: str,
        params: dict[str, str],
        request: httpx.Request,
        body: Any,
        authorization: str | None,
    ) -> httpx.Response:
        failure = self._failures.get(name)
        if failure is not None:
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    del self._failures[name]
            if failure.error is not None:
                raise failure.error
            return _raw(failure.status, failure.body, failure.headers)
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
            return _error(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(credential, self._public_key(), algorithms=["RS256"])
        except jwt.PyJWTError:
            return _error(401, "A JSON web token could not be decoded")
        if claims.get("iss") != str(self.app_id):
            return _error(401, "'Issuer' claim ('iss') must be an Integer")
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
                self._repository_json(f"octo-org/{name}") for name in minted.repositories
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
            return _error(401, "Bad credentials")
        if token.repositories is not None and repository.split("/")[1] not in token.repositories:
            return _error(404, "Not Found")
        if token.permissions is not None:
            permission, level = _NEEDS[route]
            granted = token.permissions.get(permission)
            if granted is None or (level == "write" and granted != "write"):
                return _error(403, "Resource not accessible by integration")
        return None

    def _commit_status(
        self, params: dict[str, str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        key = (params["repo"], params["sha"])
        self.commit_statuses.setdefault(key, []).append(body)
        now = _now()
        return httpx.Response(
            201,
            json={
                "url": f"{self.base_url}/repos/{key[0]}/statuses/{key[1]}",
                "avatar_url": "https://avatars.githubusercontent.com/in/4242?v=4",
                "id": self._new_id(),
                "node_id": "SC_kwDOAAAB",
                "state": body["state"],
                "description": body.get("description"),
                "target_url": body.get("target_url"),
                "context": body.get("context", "default"),
                "created_at": now,
                "updated_at": now,
                "creator": self._user_json(BOT_LOGIN),
            },
        )

    def _create_deployment(
        self, params: dict[str, str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        deployment = FakeDeployment(self._new_id(), params["repo"], body)
        self.deployments[deployment.id] = deployment
        return httpx.Response(201, json=self._deployment_json(deployment))

    def _deployment_status(
        self, params: dict[str, str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        deployment = self.deployments.get(int(params["deployment_id"]))
        if deployment is None or deployment.repository != params["repo"]:
            return _error(404, "Not Found")
        deployment.statuses.append(body)
        now = _now()
        repo_url = f"{self.base_url}/repos/{deployment.repository}"
        status_id = self._new_id()
        return httpx.Response(
            201,
            json={
                "url": f"{repo_url}/deployments/{deployment.id}/statuses/{status_id}",
                "id": status_id,
                "node_id": "DES_kwDOAAAB",
                "state": body["state"],
                "creator": self._user_json(BOT_LOGIN),
                "description": body.get("description", ""),
                "environment": deployment.request.get("environment", "production"),
                "target_url": body.get("log_url", ""),
                "log_url": body.get("log_url", ""),
                "environment_url": body.get("environment_url", ""),
                "created_at": now,
                "updated_at": now,
                "deployment_url": f"{repo_url}/deployments/{deployment.id}",
                "repository_url": repo_url,
            },
        )

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

        def link(to: int, rel: str) -> str:
            return f'<{url}?{urlencode({"per_page": per_page, "page": to})}>; rel="{rel}"'

        links = []
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        headers = {"Link": ", ".join(links)} if links else {}
        return httpx.Response(200, json=[self._comment_json(c) for c in chunk], headers=headers)

    def _create_comment(
        self, params: dict[str, str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        comment = FakeComment(self._new_id(), params["repo"], int(params["number"]), body["body"])
        self.comments[comment.id] = comment
        return httpx.Response(201, json=self._comment_json(comment))

    def _update_comment(
        self, params: dict[str, str], body: Any, request: httpx.Request
    ) -> httpx.Response:
        comment = self.comments.get(int(params["comment_id"]))
        if comment is None or comment.repository != params["repo"]:
            return _error(404, "Not Found")
        comment.body = body["body"]
        return httpx.Response(200, json=self._comment_json(comment))

    # --- response shapes ------------------------------------------------------------------

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _public_key(self) -> Any:
        key = serialization.load_pem_private_key(self.private_key.encode(), password=None)
        return key.public_key()

    def _user_json(self, login: str) -> dict[str, Any]:
        url = f"{self.base_url}/users/{login}"
        return {
            "login": login,
            "id": 1,
            "node_id": "MDQ6VXNlcjE=",
            "avatar_url": "https://avatars.githubusercontent.com/u/1?v=4",
            "gravatar_id": "",
            "url": url,
            "html_url": f"https://github.com/{login}",
            "followers_url": f"{url}/followers",
            "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}",
            "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions",
            "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos",
            "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events",
            "type": "Bot" if login.endswith("[bot]") else "User",
            "site_admin": False,
        }

    def _repository_json(self, full_name: str) -> dict[str, Any]:
        return {"id": 1, "name": full_name.split("/")[1], "full_name": full_name}

    def _deployment_json(self, deployment: FakeDeployment) -> dict[str, Any]:
        repo_url = f"{self.base_url}/repos/{deployment.repository}"
        request = deployment.request
        now = _now()
        return {
            "url": f"{repo_url}/deployments/{deployment.id}",
            "id": deployment.id,
            "node_id": "DE_kwDOAAAB",
            "sha": request["ref"],
            "ref": request["ref"],
            "task": request.get("task", "deploy"),
            "payload": request.get("payload", {}),
            "original_environment": request.get("environment", "production"),
            "environment": request.get("environment", "production"),
            "description": request.get("description"),
            "creator": self._user_json(BOT_LOGIN),
            "created_at": now,
            "updated_at": now,
            "statuses_url": f"{repo_url}/deployments/{deployment.id}/statuses",
            "repository_url": repo_url,
            "transient_environment": request.get("transient_environment", False),
            "production_environment": request.get("production_environment", False),
        }

    def _comment_json(self, comment: FakeComment) -> dict[str, Any]:
        repo_url = f"{self.base_url}/repos/{comment.repository}"
        now = _now()
        return {
            "id": comment.id,
            "node_id": "IC_kwDOAAAB",
            "url": f"{repo_url}/issues/comments/{comment.id}",
            "html_url": f"https://github.com/{comment.repository}/pull/{comment.number}"
            f"#issuecomment-{comment.id}",
            "body": comment.body,
            "user": self._user_json(comment.login),
            "created_at": now,
            "updated_at": now,
            "issue_url": f"{repo_url}/issues/{comment.number}",
            "author_association": "NONE",
        }


def _now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def _error(status: int, message: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "message": message,
            "documentation_url": "https://docs.github.com/rest",
            "status": str(status),
        },
    )


def _raw(status: int, body: Any, headers: dict[str, str]) -> httpx.Response:
    if body is None:
        body = _error(status, "Server Error" if status >= 500 else "Failed").json()
    if isinstance(body, bytes):
        return httpx.Response(status, content=body, headers=headers)
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)
