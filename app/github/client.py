"""Every call Scale Mesh makes to GitHub, as the App, behind one small interface.

`GitHubAppClient` signs App JWTs (githubkit's `AppAuthStrategy`), mints installation tokens and
keeps them until shortly before they expire, and mints a fresh read-only token scoped to one
repository for each build. githubkit, httpx and pydantic errors stop here: callers only ever see
`GitHubError` (or `CommentGone`). Nothing is retried here; the reconcile loop retries what failed.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar, get_args

import anyio
import httpx
import pydantic
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.cache import MemCacheStrategy
from githubkit.exception import (
    GitHubException,
    RateLimitExceeded,
    RequestError,
    RequestFailed,
    RequestTimeout,
)
from githubkit.response import Response
from githubkit.utils import UNSET

from app.github.api import CommentGone, GitHubError
from app.settings_parts import GitHubSettings

log = logging.getLogger(__name__)

TIMEOUT = 10.0
"""Seconds for each request to GitHub (connect, read, write and pool wait each)."""

TOKEN_REFRESH_MARGIN = timedelta(minutes=5)
"""An installation token is replaced once it has less than this left (GitHub gives one hour)."""

DESCRIPTION_LIMIT = 140
"""GitHub refuses a commit or deployment status whose description is longer (422)."""

COMMENTS_PER_PAGE = 100
"""GitHub's largest page of issue comments."""

MAX_COMMENT_PAGES = 100
"""Stop looking for our comment after this many pages, should a server keep saying "next"."""

USER_AGENT = "ScaleMesh"

API_HEADERS = {"X-GitHub-Api-Version": "2022-11-28"}
"""The REST API version we ask for, instead of githubkit's newest (2026-03-10): GitHub
Enterprise Server answers 400 to versions it does not know, and the endpoints used here are
the same in both versions (github.com supports 2022-11-28 until at least 2028)."""

CommitState = Literal["error", "failure", "pending", "success"]
DeploymentState = Literal[
    "error", "failure", "inactive", "in_progress", "queued", "pending", "success"
]
_S = TypeVar("_S", bound=str)

_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: datetime

    def fresh(self) -> bool:
        return datetime.now(UTC) < self.expires_at - TOKEN_REFRESH_MARGIN

    def __repr__(self) -> str:
        return f"_Token('***', expires_at={self.expires_at.isoformat()})"


class _SharedTransport(httpx.AsyncBaseTransport):
    """One connection pool under githubkit's short-lived httpx clients.

    Without an `async with` block githubkit opens an httpx client per request and closes it
    afterwards, and an `async with` block would only hold in the task that entered it. So every
    client gets this wrapper, whose `aclose()` leaves the pool open; `GitHubAppClient.aclose()`
    closes it for real.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        pass

    async def close_pool(self) -> None:
        await self._inner.aclose()


class GitHubAppClient:
    """`GitHubApi` over githubkit, authenticated as the GitHub App of `settings`.

    `api_url` is https://api.github.com or a GitHub Enterprise Server URL ending in /api/v3.
    `transport` replaces the network, for tests.
    """

    def __init__(
        self,
        settings: GitHubSettings,
        api_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._transport = _SharedTransport(transport or httpx.AsyncHTTPTransport())
        # Our own cache strategy: githubkit's default is one process-wide cache, which would
        # share JWTs between clients (and between tests).
        self._app = GitHub(
            AppAuthStrategy(app_id=settings.app_id, private_key=settings.private_key.reveal()),
            base_url=api_url,
            user_agent=USER_AGENT,
            timeout=TIMEOUT,
            async_transport=self._transport,
            cache_strategy=MemCacheStrategy(),
            http_cache=False,
            auto_retry=False,
        )
        self._tokens: dict[int, _Token] = {}
        self._minting: dict[int, anyio.Lock] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"GitHubAppClient(base_url={str(self._app.config.base_url)!r})"

    async def repo_token(self, installation_id: int, repository: str) -> str:
        _owner, name = _split(repository)
        action = f"mint a build token for {repository}"
        self._check_open(action)
        with _translated(action):
            response = await self._app.rest.apps.async_create_installation_access_token(
                installation_id,
                headers=API_HEADERS,
                # All a build may do with it: clone this one repository.
                repositories=[name],
                permissions={"contents": "read"},
            )
            token = _parse_token(response, action)
        log.debug(
            "build token minted",
            extra={"installation_id": installation_id, "expires_at": token.expires_at},
        )
        return token.value

    async def set_commit_status(
        self,
        installation_id: int,
        repository: str,
        sha: str,
        *,
        state: str,
        context: str,
        description: str,
        target_url: str,
    ) -> None:
        owner, name = _split(repository)
        if not _SHA.fullmatch(sha):
            raise GitHubError(f"{sha!r} is not a commit sha")
        checked = _one_of(state, get_args(CommitState), "commit status state")
        action = f"set commit status {context} on {repository}@{sha[:12]}"
        gh = await self._as_installation(installation_id, action)
        with self._translated(action, installation_id):
            await gh.rest.repos.async_create_commit_status(
                owner,
                name,
                sha,
                headers=API_HEADERS,
                state=checked,
                context=context,
                description=_shorten(description),
                target_url=target_url,
            )

    async def create_deployment(
        self,
        installation_id: int,
        repository: str,
        *,
        sha: str,
        environment: str,
        description: str,
        transient: bool,
        production: bool,
    ) -> int:
        owner, name = _split(repository)
        action = f"create a deployment of {repository}@{sha[:12]} to {environment}"
        gh = await self._as_installation(installation_id, action)
        with self._translated(action, installation_id):
            response = await gh.rest.repos.async_create_deployment(
                owner,
                name,
                headers=API_HEADERS,
                ref=sha,
                environment=environment,
                description=description,
                # Otherwise GitHub refuses while our own commit status is still pending.
                required_contexts=[],
                # Never let GitHub merge the default branch into the ref it was given.
                auto_merge=False,
                transient_environment=transient,
                production_environment=production,
            )
            return _parse_id(response, action)

    async def set_deployment_status(
        self,
        installation_id: int,
        repository: str,
        deployment_id: int,
        *,
        state: str,
        environment_url: str | None,
        log_url: str,
        description: str,
    ) -> None:
        owner, name = _split(repository)
        action = f"set status {state} on deployment {deployment_id} of {repository}"
        checked = _one_of(state, get_args(DeploymentState), "deployment status state")
        gh = await self._as_installation(installation_id, action)
        with self._translated(action, installation_id):
            await gh.rest.repos.async_create_deployment_status(
                owner,
                name,
                deployment_id,
                headers=API_HEADERS,
                state=checked,
                log_url=log_url,
                description=_shorten(description),
                environment_url=UNSET if environment_url is None else environment_url,
            )

    async def create_comment(
        self, installation_id: int, repository: str, number: int, body: str
    ) -> int:
        owner, name = _split(repository)
        action = f"comment on {repository}#{number}"
        gh = await self._as_installation(installation_id, action)
        with self._translated(action, installation_id):
            response = await gh.rest.issues.async_create_comment(
                owner, name, number, headers=API_HEADERS, body=body
            )
            return _parse_id(response, action)

    async def update_comment(
        self, installation_id: int, repository: str, comment_id: int, body: str
    ) -> None:
        owner, name = _split(repository)
        action = f"edit comment {comment_id} on {repository}"
        gh = await self._as_installation(installation_id, action)
        with self._translated(action, installation_id, gone=True):
            await gh.rest.issues.async_update_comment(
                owner, name, comment_id, headers=API_HEADERS, body=body
            )

    async def find_comment(
        self, installation_id: int, repository: str, number: int, marker: str
    ) -> int | None:
        owner, name = _split(repository)
        action = f"look for our comment on {repository}#{number}"
        gh = await self._as_installation(installation_id, action)
        # Page numbers, not the Link URL: the token goes only to the configured API host.
        for page in range(1, MAX_COMMENT_PAGES + 1):
            with self._translated(action, installation_id):
                response = await gh.rest.issues.async_list_comments(
                    owner, name, number, per_page=COMMENTS_PER_PAGE, page=page, headers=API_HEADERS
                )
            for comment in _parse_list(response, action):
                body = comment.get("body")
                if isinstance(body, str) and marker in body:
                    return _object_id(comment, action)
            if "next" not in response.raw_response.links:
                return None
        log.warning(
            "comment search gave up",
            extra={"repository": repository, "number": number, "pages": MAX_COMMENT_PAGES},
        )
        return None

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._tokens.clear()
            await self._transport.close_pool()

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise GitHubError(f"{action}: the GitHub client is closed")

    async def _as_installation(self, installation_id: int, action: str) -> GitHub[Any]:
        """A githubkit client carrying the installation's token, minting one when needed."""
        self._check_open(action)
        token = self._fresh_token(installation_id)
        if token is None:
            async with self._minting.setdefault(installation_id, anyio.Lock()):
                # Another call may have minted one while this one waited for the lock.
                token = self._fresh_token(installation_id) or await self._mint(
                    installation_id, action
                )
        return GitHub(TokenAuthStrategy(token.value), config=self._app.config)

    def _fresh_token(self, installation_id: int) -> _Token | None:
        token = self._tokens.get(installation_id)
        return token if token is not None and token.fresh() else None

    async def _mint(self, installation_id: int, action: str) -> _Token:
        """A new installation token, kept for the next calls."""
        with _translated(action):
            response = await self._app.rest.apps.async_create_installation_access_token(
                installation_id, headers=API_HEADERS
            )
            token = _parse_token(response, action)
        log.debug(
            "installation token minted",
            extra={"installation_id": installation_id, "expires_at": token.expires_at},
        )
        self._tokens[installation_id] = token
        return token

    @contextlib.contextmanager
    def _translated(
        self, action: str, installation_id: int, *, gone: bool = False
    ) -> Iterator[None]:
        """`_translated`; a 401 also drops the cached token (revoked early), `gone` maps 404/410."""
        try:
            with _translated(action):
                yield
        except GitHubError as exc:
            if exc.status == 401:
                self._tokens.pop(installation_id, None)
            if gone and exc.status in (404, 410):
                raise CommentGone(str(exc), exc.status) from exc
            raise


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn whatever githubkit, httpx or pydantic raise into `GitHubError`, naming `action`."""
    try:
        yield
    except RequestFailed as exc:
        status = exc.response.status_code
        retry_after = (
            exc.retry_after.total_seconds() if isinstance(exc, RateLimitExceeded) else None
        )
        message = f"{action}: GitHub answered {status}{_github_message(exc.response.raw_response)}"
        raise GitHubError(message, status, retry_after=retry_after) from exc
    except RequestTimeout as exc:
        raise GitHubError(f"{action}: GitHub did not answer within {TIMEOUT:g} s") from exc
    except (RequestError, GitHubException, httpx.HTTPError, pydantic.ValidationError) as exc:
        # RequestError wraps what httpx raised; the others are a safety net (auth set-up, a
        # request body githubkit's schema refuses) so that no vendor exception gets past here.
        cause = exc.exc if isinstance(exc, RequestError) else exc
        raise GitHubError(f"{action}: {_describe(cause)}") from exc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _github_message(response: httpx.Response) -> str:
    """GitHub's own one-line explanation from an error body, if it gave one."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        return ""
    return f": {message[:200]}" if isinstance(message, str) and message else ""


def _split(repository: str) -> tuple[str, str]:
    # Both parts go into URL paths: refuse anything that could step out of /repos/{owner}/{name}.
    owner, _, name = repository.partition("/")
    if not _OWNER.fullmatch(owner) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise GitHubError(f"{repository!r} is not a repository name like owner/name")
    return owner, name


def _one_of(value: str, allowed: tuple[_S, ...], what: str) -> _S:
    for candidate in allowed:
        if value == candidate:
            return candidate
    raise GitHubError(f"{value!r} is not a {what} GitHub knows ({', '.join(allowed)})")


def _shorten(description: str) -> str:
    if len(description) <= DESCRIPTION_LIMIT:
        return description
    return description[: DESCRIPTION_LIMIT - 1] + "…"


# Responses are read as plain JSON, taking only the fields we use: githubkit's models follow
# GitHub's latest schema and can reject a real answer (LIBRARY-NOTES §0.2); a comment that was
# created but failed to parse would be created again by the next retry.


def _parse_object(response: Response[Any], action: str) -> dict[str, Any]:
    try:
        data = response.raw_response.json()
    except ValueError:
        raise GitHubError(f"{action}: GitHub answered with something other than JSON") from None
    if not isinstance(data, dict):
        raise GitHubError(f"{action}: GitHub answered with a {type(data).__name__}, not an object")
    return data


def _parse_list(response: Response[Any], action: str) -> list[dict[str, Any]]:
    try:
        data = response.raw_response.json()
    except ValueError:
        raise GitHubError(f"{action}: GitHub answered with something other than JSON") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise GitHubError(f"{action}: GitHub answered with something other than a list")
    return data


def _parse_id(response: Response[Any], action: str) -> int:
    return _object_id(_parse_object(response, action), action)


def _object_id(data: dict[str, Any], action: str) -> int:
    value = data.get("id")
    if not isinstance(value, int) or isinstance(value, bool):
        raise GitHubError(f"{action}: GitHub's answer has no id")
    return value


def _parse_token(response: Response[Any], action: str) -> _Token:
    data = _parse_object(response, action)
    value, expires_at = data.get("token"), data.get("expires_at")
    if not isinstance(value, str) or not value or not isinstance(expires_at, str):
        raise GitHubError(f"{action}: GitHub's answer has no token and expiry")
    try:
        expiry = datetime.fromisoformat(expires_at)
    except ValueError:
        raise GitHubError(f"{action}: GitHub's token expiry {expires_at!r} is not a time") from None
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    return _Token(value, expiry)
